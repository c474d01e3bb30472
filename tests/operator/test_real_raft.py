"""The leader in status is the one real PFC node processes elect over real Raft."""

from __future__ import annotations

from brains import brain_cluster, condition, members_by_name, operator_running, status

from support import LocalBrain, wait_until


def leader_of(api, name: str) -> dict:
    return status(api, name).get("leader") or {}


def test_status_follows_a_real_raft_failover(operator_env, processes, router):
    api = operator_env
    brain = LocalBrain(processes, router, "raft", pfc=3, vision=0, heartbeat=0.2)
    for node_id in brain.pfc_ids:
        brain.start_pfc(node_id)
    with operator_running():
        api.create(brain_cluster("raft", {"vision": {"replicas": 0},
                                          "heartbeat": {"timeoutSeconds": 2}}))
        first = wait_until(lambda: leader_of(api, "raft"), 90, what="a Raft leader in status")
        running = status(api, "raft")
        claims = [m["name"] for m in running["members"] if m["raftState"] == "leader"]
        assert claims == [first["node"]]
        assert condition(running, "Available")["status"] == "True"

        brain.kill(first["node"])
        second = wait_until(
            lambda: (lead := leader_of(api, "raft")).get("node") not in (None, first["node"])
            and lead,
            30, what="a new leader after killing the old one",
        )
    assert second["term"] > first["term"]
    assert members_by_name(status(api, "raft"))[first["node"]]["healthy"] is False
