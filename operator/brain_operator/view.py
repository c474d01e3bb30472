"""How ``brainctl up`` shows a running cluster: a live rich table, or plain lines."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from .decision_stats import DecisionFigures


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}ms"


def _age(rfc: str | None, now: float) -> str:
    if not rfc:
        return "never"
    seen = datetime.fromisoformat(rfc.replace("Z", "+00:00")).timestamp()
    return f"{max(0.0, now - seen):.1f}s ago"


def summary_line(status: dict[str, Any], figures: DecisionFigures) -> str:
    """One line per refresh, for logs and non-terminal output (``make run`` in CI)."""
    leader = status.get("leader") or {}
    last = (status.get("replacements") or {}).get("last") or {}
    parts = [
        f"phase={status.get('phase')}",
        f"leader={leader.get('node', '-')}",
        f"term={leader.get('term', '-')}",
        f"pfc={status.get('pfcReady', '-')}",
        f"vision={status.get('visionReady', '-')}",
        f"decisions={figures.last_task_id + 1}",
        f"rate={figures.rate_per_s:.1f}/s",
        f"p50={_ms(figures.p50_ms)}",
        f"p95={_ms(figures.p95_ms)}",
        f"replacements={(status.get('replacements') or {}).get('total', 0)}",
    ]
    if last:
        parts.append(f"last_replacement={last.get('node')}:{last.get('reason')}")
    return " ".join(parts)


def live_view(cluster: str, status: dict[str, Any], figures: DecisionFigures) -> Group:
    now = time.time()
    leader = status.get("leader") or {}
    head = Text.assemble(
        (f"{cluster} ", "bold"), (f"{status.get('phase')}", "bold green"
                                  if status.get("phase") == "Running" else "bold yellow"),
        f"   leader {leader.get('node', '-')} (term {leader.get('term', '-')})",
        f"   decisions {figures.last_task_id + 1}  {figures.rate_per_s:.1f}/s",
        f"   latency p50 {_ms(figures.p50_ms)} p95 {_ms(figures.p95_ms)}",
        f"   replacements {(status.get('replacements') or {}).get('total', 0)}",
    )
    table = Table(expand=False)
    for column in ("member", "role", "state", "raft", "term", "commit", "last heartbeat"):
        table.add_column(column)
    for m in status.get("members", []):
        style = "green" if m.get("healthy") else "red"
        table.add_row(
            m.get("name", "?"), m.get("role", "?"), Text(str(m.get("state")), style=style),
            str(m.get("raftState") or "-"), str(m.get("term") if m.get("term") is not None
                                                  else "-"),
            str(m.get("commitIndex") if m.get("commitIndex") is not None else "-"),
            _age(m.get("lastHeartbeat"), now),
        )
    last = (status.get("replacements") or {}).get("last")
    foot = Text(f"last replacement: {last.get('node')} ({last.get('reason')})" if last else "")
    return Group(head, table, foot)
