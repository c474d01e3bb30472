"""Rolling figures over committed decisions: rate and request→commit latency (pure)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from evospikenet.protocol import Decision


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an already sorted list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


@dataclass(frozen=True)
class DecisionFigures:
    total: int
    last_task_id: int
    rate_per_s: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class DecisionStats:
    """Feed it published decisions; ask for figures over the last ``window`` seconds."""

    def __init__(self, window: float = 5.0, keep: int = 2000) -> None:
        self.window = window
        self.total = 0
        self.last_task_id = -1
        self._seen: set[int] = set()
        self._recent: deque[tuple[float, float]] = deque(maxlen=keep)  # (committed, latency)

    def add(self, decision: Decision) -> None:
        ts = decision.timestamps
        committed, requested = ts.get("committed"), ts.get("requested")
        if decision.task_id in self._seen or committed is None or requested is None:
            return  # a republished or incomplete decision says nothing new
        self._seen.add(decision.task_id)
        if len(self._seen) > 100_000:
            self._seen = {t for t in self._seen if t > decision.task_id - 10_000}
        self.total += 1
        self.last_task_id = max(self.last_task_id, decision.task_id)
        self._recent.append((float(committed), float(committed) - float(requested)))

    def figures(self, now: float) -> DecisionFigures:
        snapshot = list(self._recent)  # one C-level copy: safe while a subscriber appends
        recent = [(c, lat) for c, lat in snapshot if now - c <= self.window]
        latencies = sorted(lat * 1000 for _, lat in recent)
        return DecisionFigures(
            total=self.total,
            last_task_id=self.last_task_id,
            rate_per_s=len(recent) / self.window,
            p50_ms=percentile(latencies, 50),
            p95_ms=percentile(latencies, 95),
            p99_ms=percentile(latencies, 99),
        )
