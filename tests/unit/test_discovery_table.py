"""The node-table rules of discovery, without sockets: heartbeats, timeout, cleanup."""

from __future__ import annotations

from evospikenet.node_discovery import NodeInfo, apply_heartbeat, check_nodes
from evospikenet.protocol import Heartbeat


def hb(node_id="vision-0", seq=0, started_at=100.0, **kw) -> Heartbeat:
    return Heartbeat(
        node_id=node_id, role=kw.pop("role", "vision"), seq=seq, sent_at=started_at + seq,
        started_at=started_at, **kw,
    )


def test_heartbeat_creates_an_active_row_with_metadata():
    nodes: dict[str, NodeInfo] = {}
    apply_heartbeat(nodes, hb(seq=3, pod="p", raft={"term": 2}, extra={"x": 1}), now=110.0)
    info = nodes["vision-0"]
    assert (info.status, info.last_seen, info.role, info.started, info.seq) == (
        "active", 110.0, "vision", 100.0, 3)
    assert info.metadata["raft"] == {"term": 2} and info.metadata["x"] == 1
    assert info.metadata["pod"] == "p"


def test_timeout_marks_inactive_and_a_new_heartbeat_revives():
    nodes: dict[str, NodeInfo] = {}
    apply_heartbeat(nodes, hb(), now=100.0)
    assert check_nodes(nodes, 104.9, timeout=5, cleanup_threshold=60, auto_cleanup=True) == (
        [], [])
    assert nodes["vision-0"].status == "active"
    assert check_nodes(nodes, 105.1, timeout=5, cleanup_threshold=60, auto_cleanup=True) == (
        ["vision-0"], [])
    assert nodes["vision-0"].status == "inactive"
    assert check_nodes(nodes, 105.2, timeout=5, cleanup_threshold=60, auto_cleanup=True) == (
        [], [])  # reported once, when it happened
    apply_heartbeat(nodes, hb(seq=1), now=106.0)
    assert nodes["vision-0"].status == "active"


def test_cleanup_forgets_long_silent_nodes_only_when_enabled():
    nodes: dict[str, NodeInfo] = {}
    apply_heartbeat(nodes, hb("a"), now=100.0)
    apply_heartbeat(nodes, hb("b"), now=150.0)
    kept = dict(nodes)
    assert check_nodes(kept, 161.0, timeout=5, cleanup_threshold=60, auto_cleanup=False)[1] == []
    assert set(kept) == {"a", "b"} and kept["a"].status == "inactive"
    assert check_nodes(nodes, 161.0, timeout=5, cleanup_threshold=60, auto_cleanup=True)[1] == ["a"]
    assert set(nodes) == {"b"}


def test_lost_liveliness_is_inactive_at_once_and_late_heartbeats_do_not_revive():
    nodes: dict[str, NodeInfo] = {}
    apply_heartbeat(nodes, hb(), now=100.0)
    nodes["vision-0"].alive = False  # what the liveliness DELETE handler records
    check_nodes(nodes, 100.1, timeout=5, cleanup_threshold=60, auto_cleanup=True)
    assert nodes["vision-0"].status == "inactive"
    assert apply_heartbeat(nodes, hb(seq=1), now=100.2) is None  # same incarnation: ignored
    assert nodes["vision-0"].status == "inactive"
    apply_heartbeat(nodes, hb(seq=0, started_at=200.0), now=201.0)  # restarted process
    assert nodes["vision-0"].status == "active" and nodes["vision-0"].alive


def test_callers_may_write_last_seen():
    nodes = {"x": NodeInfo(node_id="x", last_seen=0.0, metadata={})}
    check_nodes(nodes, 10.0, timeout=5, cleanup_threshold=60, auto_cleanup=True)
    assert nodes["x"].status == "inactive"
    nodes["x"].last_seen = 10.0
    nodes["x"].status = "active"
    check_nodes(nodes, 11.0, timeout=5, cleanup_threshold=60, auto_cleanup=True)
    assert nodes["x"].status == "active"
