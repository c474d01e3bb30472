"""An operator restarted mid-way picks up where it left off: no duplicates, status converges."""

from __future__ import annotations

import time

from brains import (
    NAMESPACE,
    brain_cluster,
    condition,
    led_by,
    node_pod,
    operator_running,
    status,
)

from support import wait_until

PFC = ["pfc-0", "pfc-1", "pfc-2"]
VISION = ["vision-0", "vision-1"]
CREATES = {"services": 3, "deployments": 1, "statefulsets": 2, "poddisruptionbudgets": 1}


def leader_of(api, name: str) -> dict:
    return status(api, name).get("leader") or {}


def test_restarted_operator_makes_no_duplicates_and_converges(operator_env, members):
    api = operator_env
    group = members("demo")
    group.set_raft(led_by("pfc-0", 1, PFC))
    group.start(*PFC, *VISION)
    api.create(node_pod("demo", "vision-1", time.time() - 120))
    with operator_running():
        api.create(brain_cluster("demo"))
        wait_until(lambda: leader_of(api, "demo").get("node") == "pfc-0", 30,
                   what="leader pfc-0")
        group.kill("vision-1")
        wait_until(lambda: api.get("Pod", NAMESPACE, "demo-vision-1") is None, 15,
                   what="vision-1 replaced")
        available_since = condition(status(api, "demo"), "Available")["lastTransitionTime"]

    # While no operator runs, the leader fails and pfc-1 takes over in term 2.
    group.kill("pfc-0")
    group.set_raft(led_by("pfc-1", 2, ["pfc-1", "pfc-2"]))
    assert leader_of(api, "demo")["node"] == "pfc-0"  # stale until an operator runs

    with operator_running():
        wait_until(lambda: leader_of(api, "demo").get("node") == "pfc-1", 30,
                   what="the restarted operator shows leader pfc-1")
        converged = status(api, "demo")

    assert converged["leader"]["term"] == 2
    assert converged["replacements"]["total"] == 1  # carried over, not reset
    assert converged["replacements"]["last"]["node"] == "vision-1"
    # Still available throughout as far as status shows: the transition time is kept.
    assert condition(converged, "Available")["lastTransitionTime"] == available_since
    for collection, count in CREATES.items():
        assert api.requests("POST", f"/namespaces/{NAMESPACE}/{collection}") == count, collection
    for kind in ("StatefulSet", "Service", "Deployment", "PodDisruptionBudget"):
        names = [o["metadata"]["name"] for o in api.list(kind, NAMESPACE)]
        assert len(names) == len(set(names)), kind
