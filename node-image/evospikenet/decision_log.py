"""The PFC decision log: the pure state machine behind the replicated Raft log.

Raft decides the *order* of log entries; this module decides which entries *count*. A
decision is accepted only if its ``task_id`` is exactly one past the last accepted one, so
the committed sequence is ``0..n-1`` with no gap and no duplicate no matter how many times
leadership changes hands or a proposal is retried (a retried or stale entry that reaches the
log is simply refused by every member in the same way, keeping all members identical).

Only the newest ``keep`` decisions are held in memory (plus the total ``count``), so a node
that runs for months does not grow without bound; older decisions live on only in the
published ``decisions`` stream.

No I/O, no Raft, no serialisation library: :meth:`DecisionLog.to_state` returns plain data
(dicts, lists, ints, strings) that the caller encodes with msgpack. Never pickle.
"""

from __future__ import annotations

from collections import deque
from typing import Any

STATE_VERSION = 1
DEFAULT_KEEP = 1000


def _is_task_id(value: object) -> bool:
    # bool is an int subclass; True must not pass for task 1.
    return isinstance(value, int) and not isinstance(value, bool)


class DecisionLog:
    """Committed decisions in task-id order, gapless from 0; only the tail is kept.

    Not thread-safe on its own: the Raft adapter applies entries from one thread and guards
    readers with a lock.
    """

    def __init__(self, keep: int = DEFAULT_KEEP) -> None:
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self._keep = keep
        self._tail: deque[dict[str, Any]] = deque(maxlen=keep)
        self._count = 0

    @property
    def keep(self) -> int:
        """How many of the newest decisions stay in memory."""
        return self._keep

    @property
    def count(self) -> int:
        """How many decisions were ever accepted (also ``last_task_id + 1``)."""
        return self._count

    @property
    def last_task_id(self) -> int:
        """Task id of the newest accepted decision, -1 while the log is empty."""
        return self._count - 1

    @property
    def next_task_id(self) -> int:
        """The only task id :meth:`apply` will accept next."""
        return self._count

    @property
    def decisions(self) -> list[dict[str, Any]]:
        """Copy of the in-memory tail, oldest first."""
        return list(self._tail)

    def get(self, task_id: int) -> dict[str, Any] | None:
        """The decision for ``task_id`` if it is still in the tail."""
        if not self._tail or not _is_task_id(task_id):
            return None
        first = self._count - len(self._tail)
        if first <= task_id < self._count:
            return self._tail[task_id - first]
        return None

    def accepts(self, decision: object) -> bool:
        """Whether :meth:`apply` would accept ``decision`` now (no state change)."""
        return (
            isinstance(decision, dict)
            and _is_task_id(decision.get("task_id"))
            and decision["task_id"] == self._count
        )

    def apply(self, decision: dict[str, Any]) -> bool:
        """Append ``decision`` if its task id is the next one; otherwise change nothing.

        Returns whether it was accepted. Every member applies the same log entries in the
        same order, so every member accepts and refuses the same ones.
        """
        if not self.accepts(decision):
            return False
        self._tail.append(dict(decision))
        self._count += 1
        return True

    def reset(self) -> None:
        """Forget everything; the Raft log is replayed into an empty state machine."""
        self._tail.clear()
        self._count = 0

    def to_state(self) -> dict[str, Any]:
        """Plain-data snapshot (msgpack-friendly) of the whole state machine."""
        return {
            "version": STATE_VERSION,
            "count": self._count,
            "tail": [dict(d) for d in self._tail],
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Replace this log's contents with a :meth:`to_state` snapshot.

        The snapshot is validated first (it may have come from another member over the
        network), and this log is left untouched if it is malformed.
        """
        count, tail = _validated(state)
        self._tail = deque(tail[-self._keep :], maxlen=self._keep)
        self._count = count

    @classmethod
    def from_state(cls, state: dict[str, Any], keep: int = DEFAULT_KEEP) -> DecisionLog:
        """A new log holding the snapshot ``state`` (tail trimmed to ``keep``)."""
        log = cls(keep)
        log.restore(state)
        return log


def _validated(state: object) -> tuple[int, list[dict[str, Any]]]:
    if not isinstance(state, dict):
        raise ValueError("decision-log state must be a map")
    if state.get("version") != STATE_VERSION:
        raise ValueError(f"unsupported decision-log state version {state.get('version')!r}")
    count = state.get("count")
    tail = state.get("tail")
    if not _is_task_id(count) or count < 0:
        raise ValueError(f"decision-log count must be a non-negative int, got {count!r}")
    if not isinstance(tail, list) or len(tail) > count:
        raise ValueError("decision-log tail must be a list no longer than count")
    first = count - len(tail)
    for offset, decision in enumerate(tail):
        if (
            not isinstance(decision, dict)
            or not _is_task_id(decision.get("task_id"))
            or decision["task_id"] != first + offset
        ):
            raise ValueError(
                f"decision-log tail is not contiguous at position {offset} "
                f"(expected task_id {first + offset})"
            )
    return count, [dict(d) for d in tail]
