"""The node image as a whole brain in Docker: election, failover, partition and catch-up.

The steps build on each other (one cluster for the module, started once: five torch
containers take a while on two cores), so they run in file order and each one leaves the
cluster with all five nodes running for the next.
"""

from __future__ import annotations

import time

import pytest
from dockerbrain import PFC_IDS, VISION_IDS, DockerBrain, Observer

from support import wait_until

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

STARTUP_TIMEOUT = 180  # image start, torch import and model sync on a loaded 2-core machine


def assert_no_duplicate_task_ids(obs: Observer) -> None:
    ids = [d.task_id for d in obs.seen]
    assert len(ids) == len(set(ids)), f"a task id was committed twice: {sorted(ids)}"


def heartbeat_activity(metrics: dict[str, float]) -> float:
    return sum(metrics.get(f"brain_fabric_{n}_total", 0.0)
               for n in ("sent", "retries", "send_errors"))


def wait_all_active(obs: Observer, timeout: float) -> None:
    wait_until(lambda: all(obs.active(n) for n in PFC_IDS + VISION_IDS), timeout,
               interval=0.1, what="every node active")


def test_a_leader_is_elected_and_decisions_flow(brain: tuple[DockerBrain, Observer]):
    containers, obs = brain
    try:
        wait_all_active(obs, STARTUP_TIMEOUT)
        leader = wait_until(obs.leader, 60, interval=0.05, what="a single leader")
    except AssertionError:
        for node in ["router", *PFC_IDS, *VISION_IDS]:
            print(f"--- {node}\n{containers.logs(node)}")
        raise
    decisions = obs.wait_decisions(10, 60, "10 decisions")
    assert {d.leader for d in decisions[-5:]} == {leader}
    assert {d.vision_node for d in decisions} <= set(VISION_IDS)
    ids = [d.task_id for d in decisions]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_killing_the_leader_container_elects_a_new_leader(brain):
    containers, obs = brain
    old = wait_until(obs.leader, 30, interval=0.05, what="a leader")
    old_term = obs.raft(old)["term"]
    obs.collect()
    before = max(d.task_id for d in obs.seen)
    killed_at = time.monotonic()
    containers.kill(old)
    new = wait_until(lambda: obs.leader(exclude=old), 30, interval=0.02,
                     what="a new leader after docker kill")
    print(f"new leader {new} reported {time.monotonic() - killed_at:.2f}s after the kill")
    assert obs.raft(new)["term"] > old_term
    after = obs.wait_decisions(5, 30, "decisions from the new leader")
    assert all(d.task_id > before for d in after)
    assert {d.leader for d in after[-3:]} == {new}
    assert_no_duplicate_task_ids(obs)

    # Back to five nodes: the killed container restarts with its journal and catches up.
    containers.restart(old)
    wait_until(lambda: obs.active(old), STARTUP_TIMEOUT, interval=0.1, what=f"{old} back")
    target = obs.last_task_id(new)
    wait_until(lambda: obs.last_task_id(old) >= target, 60, interval=0.2,
               what=f"{old} caught up to task {target}")


def test_a_disconnected_node_commits_nothing_and_catches_up(brain):
    containers, obs = brain
    leader = wait_until(obs.leader, 30, interval=0.05, what="a leader")
    isolated = next(n for n in PFC_IDS if n != leader)
    wait_until(lambda: obs.active(isolated), 60, interval=0.1, what=f"{isolated} active")

    containers.disconnect(isolated)
    # Let the isolated node notice it is alone; its gauges are read inside the container.
    time.sleep(3)
    first = containers.metrics(isolated)
    obs.collect()
    majority = obs.wait_decisions(20, 60, "the majority committing without the isolated node")
    # A live reading, not a frozen one: the heartbeat loop that refreshes the Raft gauges
    # completes each beat as sent, retried or failed. Two completed beats after the first
    # reading mean the second one was built (gauges set) after it.
    second = wait_until(
        lambda: (lambda m: m if heartbeat_activity(m) >= heartbeat_activity(first) + 2
                 else None)(containers.metrics(isolated)),
        60, interval=0.5, what=f"two heartbeat cycles on the isolated {isolated}")
    print(f"isolated {isolated}: commit index {first['brain_raft_commit_index']:.0f} -> "
          f"{second['brain_raft_commit_index']:.0f}, term {first['brain_raft_term']:.0f} -> "
          f"{second['brain_raft_term']:.0f}, fabric activity {heartbeat_activity(first):.0f} -> "
          f"{heartbeat_activity(second):.0f}; majority committed "
          f"{majority[0].task_id}..{majority[-1].task_id}")
    assert second["brain_raft_commit_index"] == first["brain_raft_commit_index"], (
        "the isolated node committed while cut off")
    assert second["brain_raft_is_leader"] == 0
    assert isolated not in {d.leader for d in majority}
    wait_until(lambda: not obs.active(isolated), 15, interval=0.1,
               what=f"{isolated} reported inactive")

    containers.reconnect(isolated)
    wait_until(lambda: obs.active(isolated), 60, interval=0.1, what=f"{isolated} back")
    wait_until(obs.leader, 30, interval=0.05, what="a leader after the reconnect")
    target = max(d.task_id for d in obs.seen)
    wait_until(lambda: obs.last_task_id(isolated) >= target, 60, interval=0.2,
               what=f"{isolated} caught up to task {target}")
    obs.wait_decisions(5, 30, "decisions after the reconnect")
    assert_no_duplicate_task_ids(obs)
