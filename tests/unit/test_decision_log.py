"""The decision log's acceptance rule and snapshot format (pure, no Raft)."""

from __future__ import annotations

import msgpack
import pytest

from evospikenet.decision_log import DecisionLog


def _decision(task_id: object, **extra: object) -> dict:
    return {"task_id": task_id, "module": 1, "probs": [0.25, 0.75], **extra}


def test_empty_log_expects_task_zero() -> None:
    log = DecisionLog()
    assert log.last_task_id == -1
    assert log.next_task_id == 0
    assert log.count == 0
    assert log.decisions == []


def test_accepts_contiguous_task_ids_in_order() -> None:
    log = DecisionLog()
    assert [log.apply(_decision(k)) for k in range(5)] == [True] * 5
    assert log.last_task_id == 4
    assert [d["task_id"] for d in log.decisions] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("bad", [2, 6, -1])
def test_rejects_a_gap_and_leaves_state_unchanged(bad: int) -> None:
    log = DecisionLog()
    log.apply(_decision(0))
    before = log.to_state()
    assert log.apply(_decision(bad)) is False
    assert log.to_state() == before


def test_rejects_duplicates_even_with_different_content() -> None:
    log = DecisionLog()
    assert log.apply(_decision(0, module=1))
    assert log.apply(_decision(0, module=2)) is False
    assert log.count == 1
    assert log.decisions[0]["module"] == 1


@pytest.mark.parametrize("bad", [{"module": 1}, {"task_id": "0"}, {"task_id": False}, [0], None])
def test_rejects_malformed_decisions(bad: object) -> None:
    log = DecisionLog()
    assert log.apply(bad) is False  # type: ignore[arg-type]
    assert log.count == 0


def test_stored_decision_is_a_copy() -> None:
    log = DecisionLog()
    decision = _decision(0)
    log.apply(decision)
    decision["module"] = 99
    assert log.decisions[0]["module"] == 1


def test_tail_is_bounded_but_count_keeps_growing() -> None:
    log = DecisionLog(keep=3)
    for k in range(10):
        assert log.apply(_decision(k))
    assert log.count == 10
    assert log.last_task_id == 9
    assert [d["task_id"] for d in log.decisions] == [7, 8, 9]
    assert log.get(8)["task_id"] == 8
    assert log.get(2) is None
    assert log.apply(_decision(10))
    assert [d["task_id"] for d in log.decisions] == [8, 9, 10]


def test_state_round_trips_through_msgpack() -> None:
    log = DecisionLog(keep=4)
    for k in range(6):
        log.apply(_decision(k, entropy=0.5 + k))
    wire = msgpack.packb(log.to_state(), use_bin_type=True)
    restored = DecisionLog.from_state(msgpack.unpackb(wire, raw=False), keep=4)
    assert restored.to_state() == log.to_state()
    assert restored.last_task_id == 5
    assert restored.apply(_decision(6))
    assert restored.apply(_decision(5)) is False


def test_restore_into_smaller_keep_trims_tail() -> None:
    log = DecisionLog(keep=10)
    for k in range(6):
        log.apply(_decision(k))
    small = DecisionLog.from_state(log.to_state(), keep=2)
    assert small.count == 6
    assert [d["task_id"] for d in small.decisions] == [4, 5]


def test_reset_empties_the_log() -> None:
    log = DecisionLog()
    log.apply(_decision(0))
    log.reset()
    assert log.last_task_id == -1
    assert log.apply(_decision(0))


@pytest.mark.parametrize(
    "state",
    [
        None,
        {"version": 2, "count": 0, "tail": []},
        {"version": 1, "count": -1, "tail": []},
        {"version": 1, "count": 1, "tail": [{"task_id": 0}, {"task_id": 1}]},
        {"version": 1, "count": 3, "tail": [{"task_id": 0}, {"task_id": 2}]},
        {"version": 1, "count": 2, "tail": [{"task_id": 1}, {"task_id": 1}]},
        {"version": 1, "count": 2, "tail": "nope"},
    ],
)
def test_restore_refuses_malformed_state_and_keeps_old_contents(state: object) -> None:
    log = DecisionLog()
    log.apply(_decision(0))
    before = log.to_state()
    with pytest.raises(ValueError):
        log.restore(state)  # type: ignore[arg-type]
    assert log.to_state() == before


def test_keep_must_be_positive() -> None:
    with pytest.raises(ValueError):
        DecisionLog(keep=0)
