"""Status from real heartbeats: phase, leader, members, quorum, and invalid specs."""

from __future__ import annotations

from brains import (
    NAMESPACE,
    brain_cluster,
    condition,
    led_by,
    members_by_name,
    operator_running,
    status,
)

from support import wait_until

PFC = ["pfc-0", "pfc-1", "pfc-2"]
VISION = ["vision-0", "vision-1"]


def test_running_cluster_shows_leader_and_members_and_follows_a_failover(operator_env, members):
    api = operator_env
    group = members("demo")
    group.set_raft(led_by("pfc-0", 1, PFC))
    group.start(*PFC, *VISION)
    with operator_running():
        cluster = api.create(brain_cluster("demo"))
        running = wait_until(
            lambda: (s := status(api, "demo")).get("phase") == "Running" and s, 30,
            what="phase Running",
        )
        assert condition(running, "Available")["status"] == "True"
        assert running["leader"]["node"] == "pfc-0" and running["leader"]["term"] == 1
        assert running["leader"]["pod"] == "demo-pfc-0"
        assert (running["pfcReady"], running["visionReady"]) == ("3/3", "2/2")
        assert running["observedGeneration"] == cluster["metadata"]["generation"]
        rows = members_by_name(running)
        assert list(rows) == PFC + VISION
        assert all(row["healthy"] and row["state"] == "active" for row in rows.values())
        assert rows["pfc-1"]["raftState"] == "follower" and rows["pfc-1"]["term"] == 1
        assert running["vision"]["selector"].count("=") == 3

        # The leader dies; the survivors elect pfc-1 in term 2.
        group.kill("pfc-0")
        group.set_raft(led_by("pfc-1", 2, ["pfc-1", "pfc-2"]))
        failover = wait_until(
            lambda: ((s := status(api, "demo")).get("leader") or {}).get("node") == "pfc-1"
            and s,
            20, what="pfc-1 shown as the new leader",
        )
    assert failover["leader"]["term"] == 2
    assert failover["phase"] == "Degraded"
    assert condition(failover, "Available")["status"] == "True"
    assert members_by_name(failover)["pfc-0"]["healthy"] is False


def test_two_of_three_pfc_silent_is_quorum_lost(operator_env, members):
    api = operator_env
    group = members("small")
    group.set_raft(led_by("pfc-0", 3, PFC))
    group.start(*PFC)
    with operator_running():
        api.create(brain_cluster("small", {"vision": {"replicas": 0}}))
        wait_until(lambda: status(api, "small").get("phase") == "Running", 30,
                   what="phase Running")
        group.kill("pfc-1", "pfc-2")
        lost = wait_until(
            lambda: (s := status(api, "small")).get("phase") == "QuorumLost" and s, 20,
            what="phase QuorumLost",
        )
    available = condition(lost, "Available")
    assert available["status"] == "False" and available["reason"] == "NoQuorum"
    assert lost.get("leader") is None  # a merge patch with null clears it
    assert lost["pfcReady"] == "1/3"


def test_an_invalid_cluster_fails_with_an_event_naming_the_field(operator_env):
    api = operator_env
    with operator_running():
        api.create(brain_cluster("broken", {"pfc": {"replicas": 2}}))
        failed = wait_until(
            lambda: (s := status(api, "broken")).get("phase") == "Failed" and s, 20,
            what="phase Failed",
        )
        (event,) = wait_until(lambda: api.events(NAMESPACE, "InvalidSpec"), 20,
                              what="an InvalidSpec event")
    assert "spec.pfc.replicas" in failed["message"] and "odd" in failed["message"]
    assert condition(failed, "Available")["reason"] == "InvalidSpec"
    assert event["type"] == "Warning"
    assert event["involvedObject"]["name"] == "broken"
    assert "spec.pfc.replicas: must be odd" in event["message"]
    assert api.get("StatefulSet", NAMESPACE, "broken-pfc") is None
    assert api.get("Deployment", NAMESPACE, "broken-router") is None
