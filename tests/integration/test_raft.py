"""RaftConsensus on real pysyncobj over 127.0.0.1: election, replication, faults, restarts."""

from __future__ import annotations

import socket
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import msgpack
import pysyncobj.pickle
import pytest
from raft_member import MemberProcess

from evospikenet.distributed_training import (
    DecisionRejected,
    NoQuorum,
    NotLeader,
    RaftConsensus,
    kubernetes_address_of,
)

HEARTBEAT = 0.02
ELECTION = 0.3
IDS = ["pfc-0", "pfc-1", "pfc-2"]

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float = 5.0, what: str = "condition") -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.005)


class Group:
    """Three in-process members on free ports; every member is stopped at teardown."""

    def __init__(self, ports: list[int], data_root: Path | None = None, **options: Any) -> None:
        self.addresses = {i: f"127.0.0.1:{p}" for i, p in zip(IDS, ports, strict=True)}
        self.data_root = data_root
        self.options = options
        self.members = {i: self.make(i) for i in IDS}

    def make(self, node_id: str) -> RaftConsensus:
        data_dir = None if self.data_root is None else self.data_root / node_id
        return RaftConsensus(
            node_id,
            IDS,
            HEARTBEAT,
            ELECTION,
            address_of=self.addresses.__getitem__,
            data_dir=data_dir,
            **self.options,
        )

    def start(self) -> None:
        for member in self.members.values():
            member.start()

    def stop(self) -> None:
        for member in self.members.values():
            member.stop()

    def running(self) -> list[RaftConsensus]:
        return [m for m in self.members.values() if m.running]

    def leader(self, timeout: float = 5.0) -> RaftConsensus:
        """The one leader every running member agrees on (and that is ready to write)."""

        def agreed() -> RaftConsensus | None:
            running = self.running()
            leaders = [m for m in running if m.is_leader]
            if len(leaders) != 1 or not leaders[0].leader_ready:
                return None
            if any(m.leader != leaders[0].node_id for m in running):
                return None
            return leaders[0]

        return wait_until(agreed, timeout, "a single agreed leader")

    def propose_next(self, count: int) -> list[int]:
        leader = self.leader()
        indexes = []
        for _ in range(count):
            task_id = leader.last_task_id + 1
            indexes.append(leader.propose({"task_id": task_id, "by": leader.node_id}, 2.0))
        return indexes

    def wait_all_at(self, last_task_id: int, timeout: float = 5.0) -> None:
        wait_until(
            lambda: all(m.last_task_id == last_task_id for m in self.running()),
            timeout,
            f"every running member at task {last_task_id}",
        )


@pytest.fixture
def make_group(free_ports) -> Iterator[Callable[..., Group]]:
    groups: list[Group] = []

    def factory(data_root: Path | None = None, start: bool = True, **options: Any) -> Group:
        group = Group(free_ports(3), data_root, **options)
        groups.append(group)
        if start:
            group.start()
        return group

    yield factory
    for group in groups:
        group.stop()


def task_ids(member: RaftConsensus) -> list[int]:
    return [d["task_id"] for d in member.decisions]


# --------------------------------------------------------------------- pure parts


def test_kubernetes_address_of_uses_the_headless_service_dns_name() -> None:
    address_of = kubernetes_address_of("brain", "lab", 7100)
    assert address_of("pfc-2") == "brain-pfc-2.brain-pfc.lab.svc:7100"
    assert address_of("brain-pfc-0") == "brain-pfc-0.brain-pfc.lab.svc:7100"
    with pytest.raises(ValueError):
        address_of("vision-1")


def test_election_timeout_must_exceed_three_heartbeats() -> None:
    with pytest.raises(ValueError, match="election_timeout"):
        RaftConsensus("pfc-0", IDS, heartbeat_interval=0.1, election_timeout=0.3)


def test_constructing_binds_nothing_and_resolves_nothing(free_ports) -> None:
    addresses = dict(zip(IDS, (f"127.0.0.1:{p}" for p in free_ports(3)), strict=True))
    looked_up: list[str] = []

    def address_of(node_id: str) -> str:
        looked_up.append(node_id)
        return addresses[node_id]

    member = RaftConsensus("pfc-0", IDS, HEARTBEAT, ELECTION, address_of=address_of)
    assert not member.running
    assert looked_up == []
    with socket.socket() as sock:  # its port is still free
        sock.bind(("0.0.0.0", int(addresses["pfc-0"].rsplit(":", 1)[1])))
    with pytest.raises(RuntimeError, match="not started"):
        member.propose({"task_id": 0})


def test_default_addresses_need_a_cluster_prefixed_node_id() -> None:
    member = RaftConsensus("pfc-0", IDS, HEARTBEAT, ELECTION)
    with pytest.raises(ValueError, match="address_of"):
        member.start()
    assert not member.running


# -------------------------------------------------------------- in-process group


def test_one_leader_within_five_seconds(make_group) -> None:
    group = make_group()
    leader = group.leader(timeout=5.0)
    assert [m.node_id for m in group.running() if m.state == "leader"] == [leader.node_id]
    for member in group.running():
        status = member.status()
        assert status["leader"] == leader.node_id
        assert status["term"] == leader.term
        assert status["peers"] == {p: True for p in IDS if p != member.node_id}
    assert {m.state for m in group.running() if m is not leader} == {"follower"}


def test_proposals_commit_on_every_member_in_the_same_order(make_group) -> None:
    group = make_group()
    indexes = group.propose_next(20)
    assert indexes == sorted(indexes) and len(set(indexes)) == 20
    group.wait_all_at(19)
    expected = group.leader().decisions
    assert [d["task_id"] for d in expected] == list(range(20))
    for member in group.running():
        assert member.decisions == expected
        wait_until(lambda m=member: m.commit_index >= indexes[-1], what="commit index")
        assert member.status()["decisions_count"] == 20


def test_propose_on_a_follower_names_the_leader(make_group) -> None:
    group = make_group()
    leader = group.leader()
    follower = next(m for m in group.running() if m is not leader)
    with pytest.raises(NotLeader) as info:
        follower.propose({"task_id": 0}, 1.0)
    assert info.value.leader == leader.node_id
    assert all(m.last_task_id == -1 for m in group.running())


def test_duplicate_and_gap_task_ids_are_rejected(make_group) -> None:
    group = make_group()
    leader = group.leader()
    leader.propose({"task_id": 0}, 2.0)
    with pytest.raises(DecisionRejected) as duplicate:
        leader.propose({"task_id": 0, "again": True}, 2.0)
    assert duplicate.value.expected == 1
    with pytest.raises(DecisionRejected):  # a gap goes through the log and is refused there
        leader.propose({"task_id": 5}, 2.0)
    leader.propose({"task_id": 1}, 2.0)
    group.wait_all_at(1)
    for member in group.running():
        assert member.decisions == [{"task_id": 0}, {"task_id": 1}]


def test_leader_stop_elects_a_new_leader_and_the_sequence_continues(make_group) -> None:
    group = make_group()
    group.propose_next(5)
    old = group.leader()
    old_term = old.term
    old.stop()
    new = group.leader(timeout=5.0)
    assert new.node_id != old.node_id
    assert new.term > old_term
    assert new.last_task_id == 4  # everything committed before the change survived
    group.propose_next(5)
    group.wait_all_at(9)
    for member in group.running():
        assert task_ids(member) == list(range(10))

    old.start()  # rejoins empty (no data dir) and catches up from the leader's log
    group.wait_all_at(9)
    assert old.decisions == new.decisions
    wait_until(lambda: old.leader == new.node_id, what="restarted member follows the leader")


def test_failover_after_a_quiet_spell_elects_in_the_first_round(make_group) -> None:
    """Followers never talk to each other in pysyncobj; our pings keep that link alive, so
    the first candidate after the leader dies gets its vote (term + 1, no extra round)."""
    group = make_group()
    group.propose_next(1)
    old = group.leader()
    old_term = old.term
    time.sleep(4 * ELECTION)  # quiet for longer than the connection timeout (2 × election)
    old.stop()
    new = group.leader(timeout=5.0)
    assert new.term == old_term + 1
    assert new.last_task_id == 0


def test_minority_survivor_reports_no_quorum_and_commits_nothing(make_group) -> None:
    group = make_group()
    group.propose_next(3)
    group.wait_all_at(2)  # followers learn a commit with the next append
    leader = group.leader()
    others = [m for m in group.running() if m is not leader]
    survivor, stopped = others[0], [leader, others[1]]
    for member in stopped:
        member.stop()

    wait_until(lambda: survivor.state == "no-quorum", 3.0, "survivor in no-quorum")
    deadline = time.monotonic() + 6 * ELECTION  # several election timeouts
    while time.monotonic() < deadline:
        assert survivor.state == "no-quorum"
        assert not survivor.is_leader
        time.sleep(0.01)
    with pytest.raises((NoQuorum, NotLeader, TimeoutError)):
        survivor.propose({"task_id": 3}, 0.5)
    assert survivor.last_task_id == 2
    assert survivor.status()["state"] == "no-quorum"

    stopped[1].start()  # a majority again
    new = group.leader(timeout=5.0)
    assert new.last_task_id == 2
    group.propose_next(2)
    group.wait_all_at(4)
    for member in group.running():
        assert task_ids(member) == list(range(5))


def test_whole_group_restart_with_data_dirs_keeps_every_decision(make_group, tmp_path) -> None:
    group = make_group(data_root=tmp_path)
    group.propose_next(10)
    group.wait_all_at(9)
    before = group.leader().decisions
    group.stop()
    assert all((tmp_path / i / f"{i}.journal").is_file() for i in IDS)

    for node_id in IDS:  # fresh objects, as after a pod or process restart
        group.members[node_id] = group.make(node_id)
    group.start()
    group.leader(timeout=5.0)
    group.wait_all_at(9)
    for member in group.running():
        assert member.decisions == before
    group.propose_next(1)
    group.wait_all_at(10)


def test_lagging_member_catches_up_from_a_msgpack_snapshot(
    make_group, tmp_path, monkeypatch
) -> None:
    # Every pickle entry point pysyncobj's syncobj/transport/serializer modules use.
    pickle_calls: list[str] = []
    for name in ("loads", "load", "dumps", "dump"):
        original = getattr(pysyncobj.pickle, name)

        def spy(*args: Any, _name: str = name, _original: Any = original, **kw: Any) -> Any:
            pickle_calls.append(_name)
            return _original(*args, **kw)

        monkeypatch.setattr(pysyncobj.pickle, name, spy)

    group = make_group(data_root=tmp_path, snapshot_entries=5, snapshot_seconds=0.5)
    leader = group.leader()
    lagging = next(m for m in group.running() if m is not leader)
    lagging.stop()
    lagging_dir = tmp_path / lagging.node_id
    for path in lagging_dir.iterdir():  # it comes back with nothing: needs the snapshot
        path.unlink()
    group.propose_next(30)
    dump = tmp_path / leader.node_id / f"{leader.node_id}.dump"
    wait_until(dump.is_file, 5.0, "leader snapshot written")
    snapshot = msgpack.unpackb(dump.read_bytes(), raw=False)
    assert snapshot["state"]["count"] > 0

    group.members[lagging.node_id] = lagging = group.make(lagging.node_id)
    lagging.start()
    group.wait_all_at(29)
    assert task_ids(lagging) == list(range(30))
    assert (lagging_dir / f"{lagging.node_id}.dump").is_file()  # it was sent one
    assert pickle_calls == []


def test_stop_releases_the_port_and_start_rebinds_it(make_group) -> None:
    group = make_group()
    group.leader()
    member = group.members["pfc-1"]
    port = int(group.addresses["pfc-1"].rsplit(":", 1)[1])
    member.stop()
    with socket.socket() as sock:
        # Linux refuses a second listener even with SO_REUSEADDR (which TIME_WAIT needs).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", port))
        sock.listen(1)
    member.start()
    group.leader()
    wait_until(lambda: member.status()["peers"] == {"pfc-0": True, "pfc-2": True})


def test_garbage_on_the_raft_port_is_dropped_without_unpickling(make_group, tmp_path) -> None:
    group = make_group()
    leader = group.leader()
    marker = tmp_path / "pwned"
    # What stock pysyncobj would unpickle: a zlib'd pickle calling os.system on load.
    exploit = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    payload = zlib.compress(exploit)
    for member in group.running():
        port = int(group.addresses[member.node_id].rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(struct.pack("i", len(payload)) + payload)
            sock.settimeout(2.0)
            assert sock.recv(1) == b""  # the member hung up on us
    assert not marker.exists()
    assert group.leader() is leader
    group.propose_next(1)


# ---------------------------------------------------------------- real processes


def spawn(node_id: str, peers: str, data_dir: Path) -> MemberProcess:
    return MemberProcess(
        node_id, peers, HEARTBEAT, ELECTION, data_dir, ["--propose", "--interval=0.01"]
    )


def test_sigkilled_leader_process_is_replaced_without_gap_or_duplicate(
    free_ports, tmp_path
) -> None:
    ports = free_ports(3)
    peers = ",".join(f"{i}=127.0.0.1:{p}" for i, p in zip(IDS, ports, strict=True))
    procs = {i: spawn(i, peers, tmp_path / i) for i in IDS}
    spawned = list(procs.values())

    def committing_leader(excluding: MemberProcess | None = None) -> MemberProcess | None:
        alive = [p for p in procs.values() if p.proc.poll() is None and p is not excluding]
        leaders = [p for p in alive if p.state() == "leader" and p.of("committed")]
        return leaders[0] if len(leaders) == 1 else None

    try:
        old = wait_until(committing_leader, 30.0, "a committing leader process")
        wait_until(lambda: len(old.of("committed")) >= 5, 15.0, "five commits")
        old.kill()
        last_acked = old.of("committed")[-1]["task_id"]

        new = wait_until(lambda: committing_leader(excluding=old), 20.0, "a new leader")
        wait_until(lambda: new.of("committed")[-1]["task_id"] > last_acked + 5, 15.0, "new commits")
        # The old leader proposes one task at a time, so at most one commit went unreported.
        assert min(c["task_id"] for c in new.of("committed")) in (last_acked + 1, last_acked + 2)

        restarted = procs[old.node_id] = spawn(old.node_id, peers, tmp_path / old.node_id)
        spawned.append(restarted)
        target = new.of("committed")[-1]["task_id"]
        wait_until(lambda: restarted.applied() >= target, 30.0, "restarted member caught up")

        finals = [procs[i].finish() for i in IDS]
        for final in finals:  # gapless, duplicate-free, from 0
            assert final["decisions"] == list(range(len(final["decisions"])))
        acknowledged = {c["task_id"] for p in spawned for c in p.of("committed")}
        longest = max(len(f["decisions"]) for f in finals)
        assert acknowledged <= set(range(longest))  # every acknowledged commit survived
    finally:
        for proc in spawned:
            proc.close()
