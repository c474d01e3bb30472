"""A whole brain as real processes: router + 3 PFC + 2 Vision on loopback (DESIGN §3).

One cluster serves the whole module (starting five torch processes takes a while on two
cores); every test that kills a node starts it again before it ends, so the next test
finds all five running.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from evospikenet.protocol import FeatureRequest, Features, Keys
from support import BrainObserver, LocalBrain, Processes, Router, wait_until

CLUSTER = "brain"
pytestmark = pytest.mark.slow


def contiguous(decisions: list[dict]) -> bool:
    ids = [d["task_id"] for d in decisions]
    return ids == list(range(ids[0], ids[0] + len(ids))) if ids else True


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    processes = Processes(Path(tmp_path_factory.mktemp("brain")))
    observer = None
    try:
        router = Router(processes).start()
        brain = LocalBrain(processes, router, CLUSTER, decision_rate=20.0)
        observer = BrainObserver(router.endpoint, CLUSTER, brain.pfc_ids)
        brain.start()
        yield brain, observer
    finally:
        if observer is not None:
            observer.close()
        processes.stop_all()


def wait_all_active(brain: LocalBrain, obs: BrainObserver, timeout: float = 60) -> None:
    every = brain.pfc_ids + brain.vision_ids
    wait_until(
        lambda: all(obs.active(n) for n in every),
        timeout, interval=0.1, what="every node active",
    )


def wait_leader(brain, obs, timeout: float, exclude: str | None = None) -> str:
    return wait_until(lambda: obs.leader(exclude), timeout, interval=0.02, what="a single leader")


def test_a_leader_is_elected_within_5s_and_only_one_node_leads(cluster):
    brain, obs = cluster
    wait_until(lambda: all(n in obs.discovery.nodes and obs.discovery.nodes[n].started
                           for n in brain.pfc_ids), 90, interval=0.05, what="PFC heartbeats")
    leader = wait_leader(brain, obs, 30)
    started = max(obs.discovery.nodes[n].started for n in brain.pfc_ids)
    elected_after = time.time() - started
    print(f"leader {leader} reported {elected_after:.2f}s after the last PFC node started")
    assert elected_after < 5.0
    assert obs.leaders() == [leader]
    followers = [n for n in brain.pfc_ids if n != leader]
    # Followers say so in their next heartbeat.
    wait_until(lambda: all(obs.raft(n).get("leader") == leader for n in followers), 5,
               what="followers following the leader")
    assert obs.leaders() == [leader]


def test_decisions_flow_and_every_pfc_holds_the_same_contiguous_log(cluster):
    brain, obs = cluster
    wait_all_active(brain, obs)
    leader = wait_leader(brain, obs, 30)
    start = obs.last_task_id(leader)
    wait_until(lambda: obs.last_task_id(leader) - start >= 20, 10, interval=0.1,
               what="20 decisions within 10 s")
    published = obs.collect()
    assert published and all(d.leader == leader for d in published[-5:])
    spikes = obs.spikes.get(timeout=5)  # Vision nodes also publish what they encoded
    assert spikes.node_id in brain.vision_ids and spikes.features.shape == (512,)
    assert {d.vision_node for d in published} <= set(brain.vision_ids)
    logs = {n: obs.status(n, decisions=True)["decisions"] for n in brain.pfc_ids}
    for node_id, log in logs.items():
        assert contiguous(log), node_id
        assert log[0]["task_id"] == 0, node_id
    shortest = min(len(log) for log in logs.values())
    assert shortest >= 20
    first = logs[brain.pfc_ids[0]][:shortest]
    assert all(log[:shortest] == first for log in logs.values())


def test_leader_sigkill_fails_over_without_gap_or_duplicate_and_it_catches_up(cluster):
    brain, obs = cluster
    wait_all_active(brain, obs)
    old = wait_leader(brain, obs, 30)
    old_term = obs.raft(old)["term"]
    before = obs.last_task_id(old)
    brain.kill(old)
    killed = time.monotonic()
    new = wait_leader(brain, obs, 10, exclude=old)
    failover = time.monotonic() - killed
    print(f"failover: {new} leads {failover:.2f}s after SIGKILL of {old}")
    assert obs.raft(new)["term"] > old_term
    wait_until(lambda: obs.last_task_id(new) >= before + 10, 10, interval=0.1,
               what="decisions resume under the new leader")
    survivors = [n for n in brain.pfc_ids if n != old]
    logs = [obs.status(n, decisions=True)["decisions"] for n in survivors]
    assert all(contiguous(log) and log[0]["task_id"] == 0 for log in logs)
    assert any(d["leader"] == old for d in logs[0]) and any(d["leader"] == new for d in logs[0])

    brain.start_pfc(old)  # same id, same data dir
    wait_until(lambda: obs.last_task_id(old) >= obs.last_task_id(new) - 5 >= before, 60,
               interval=0.2, what="the restarted member catches up")
    caught_up = obs.status(old, decisions=True)["decisions"]
    leader_log = obs.status(new, decisions=True)["decisions"]
    n = len(caught_up)
    assert contiguous(caught_up) and caught_up == leader_log[:n]


def test_model_digests_agree_across_replicas(cluster):
    brain, obs = cluster
    wait_all_active(brain, obs)
    for role, ids in (("pfc", brain.pfc_ids), ("vision", brain.vision_ids)):
        digests = {obs.discovery.nodes[n].metadata.get("model_digest") for n in ids}
        assert len(digests) == 1 and None not in digests, role
        assert all(obs.discovery.nodes[n].metadata.get("in_sync") for n in ids), role


def test_decisions_keep_flowing_through_the_other_vision_node(cluster):
    brain, obs = cluster
    wait_all_active(brain, obs)
    leader = wait_leader(brain, obs, 30)
    brain.kill("vision-0")
    wait_until(lambda: obs.discovery.nodes["vision-0"].status == "inactive", 5,
               what="vision-0 inactive")
    obs.collect()
    start = obs.last_task_id(leader)
    wait_until(lambda: obs.last_task_id(leader) >= start + 10, 10, interval=0.1,
               what="decisions without vision-0")
    recent = obs.collect()
    assert recent and {d.vision_node for d in recent[-5:]} == {"vision-1"}
    brain.start_vision("vision-0")
    wait_all_active(brain, obs)


def test_without_a_majority_nothing_commits_and_it_resumes_after_one_restart(cluster):
    brain, obs = cluster
    wait_all_active(brain, obs)
    leader = wait_leader(brain, obs, 30)
    follower, survivor = [n for n in brain.pfc_ids if n != leader]
    brain.kill(leader)
    brain.kill(follower)
    wait_until(lambda: obs.raft(survivor).get("state") == "no-quorum", 10, interval=0.05,
               what="survivor reports no-quorum")
    frozen = obs.last_task_id(survivor)
    # Watch the survivor for a while: it must neither lead nor commit.
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        assert obs.raft(survivor).get("state") != "leader"
        assert obs.last_task_id(survivor) == frozen
        time.sleep(0.1)
    reply = obs.comm.request(
        Keys.vision_features("vision-1"),
        FeatureRequest(task_id=frozen + 1, seed=0, requester="observer-t", sent_at=time.time()),
        timeout=5.0,
    )
    assert isinstance(reply, Features) and reply.features.shape == (512,)

    brain.start_pfc(follower)
    new = wait_leader(brain, obs, 60)
    wait_until(lambda: obs.last_task_id(new) >= frozen + 5, 20, interval=0.1,
               what="decisions resume")
    log = obs.status(new, decisions=True)["decisions"]
    assert contiguous(log) and log[0]["task_id"] == 0
    brain.start_pfc(leader)
    wait_all_active(brain, obs)
