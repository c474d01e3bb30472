"""The decision pipeline end to end: 3 PFC + 2 Vision processes, as ``brainctl up`` runs them.

    python bench/pipeline.py [--json PATH] [--quick]

For each decision rate: decisions/s committed and the request → committed latency
p50/p95/p99 (from each published Decision's own timestamps). Then the leader failover time:
SIGKILL the leader and time until another node reports leadership in its heartbeat,
a few times (the supervisor restarts the killed node in between, as it would in use).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from _report import write_report

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "pipeline.json"


def cluster_doc(rate: float) -> dict:
    return {
        "apiVersion": "brain.evospikenet.org/v1alpha1",
        "kind": "BrainCluster",
        "metadata": {"name": "bench"},
        "spec": {
            "pfc": {"replicas": 3, "decisionRateHz": rate, "storage": {"ephemeral": True}},
            "vision": {"replicas": 2},
            "heartbeat": {"intervalSeconds": 0.2, "timeoutSeconds": 1.0},
        },
    }


def leader_of(supervisor) -> str | None:
    leaders = [
        n.node_id for n in supervisor.monitor.discovery.get_active_nodes()
        if (n.metadata.get("raft") or {}).get("state") == "leader"
    ]
    return leaders[0] if len(leaders) == 1 else None


def other_leader(supervisor, old: str) -> str | None:
    new = leader_of(supervisor)
    return new if new and new != old else None


def is_active(supervisor, node_id: str) -> bool:
    return any(n.node_id == node_id for n in supervisor.monitor.discovery.get_active_nodes())


def wait_for(predicate, timeout: float, step: float = 0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return None


def run_rate(rate: float, window: float, failovers: int) -> dict:
    from brain_operator.spec import validate
    from brain_operator.supervisor import Supervisor
    from evospikenet import procs

    supervisor = Supervisor(validate(cluster_doc(rate)))
    supervisor.start()
    stop = threading.Event()
    ticker = threading.Thread(
        target=supervisor.run, args=(stop, None, lambda s, f: None), daemon=True
    )
    ticker.start()
    try:
        if not wait_for(lambda: leader_of(supervisor), 120, 0.1):
            raise RuntimeError("no leader within 120 s")
        # Figures over the last window only: the start-up backlog says nothing.
        wait_for(lambda: supervisor.stats.total > 20, 30, 0.05)
        supervisor.stats.window = window
        time.sleep(window)
        figures = supervisor.stats.figures(time.time())
        result = {
            "rate_hz": rate, "window_s": window, "decisions_per_s": figures.rate_per_s,
            "p50_ms": figures.p50_ms, "p95_ms": figures.p95_ms, "p99_ms": figures.p99_ms,
        }
        times = []
        for _ in range(failovers):
            old = wait_for(lambda: leader_of(supervisor), 60, 0.05)
            if old is None:
                break
            procs.kill(supervisor.cluster.children[old].proc)
            killed = time.monotonic()
            new = wait_for(partial(other_leader, supervisor, old), 30, 0.005)
            if new:
                times.append(time.monotonic() - killed)
            # Let the supervisor bring the killed node back before the next round.
            wait_for(partial(is_active, supervisor, old), 60, 0.1)
        result["failover_s"] = times
        return result
    finally:
        stop.set()
        ticker.join(timeout=10)
        supervisor.stop()


def print_table(results: list[dict]) -> None:
    print(f"{'rate Hz':>8} {'decisions/s':>12} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
          f"  failover s")
    for r in results:
        def ms(v):
            return f"{v:8.1f}" if v is not None else f"{'-':>8}"
        failover = ", ".join(f"{t:.2f}" for t in r["failover_s"]) or "-"
        print(f"{r['rate_hz']:>8.0f} {r['decisions_per_s']:>12.1f} {ms(r['p50_ms'])} "
              f"{ms(r['p95_ms'])} {ms(r['p99_ms'])}  {failover}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    parser.add_argument("--quick", action="store_true", help="one rate, short window")
    args = parser.parse_args(argv)
    os.environ.setdefault("BRAINCTL_HOME", tempfile.mkdtemp(prefix="brain-bench-"))
    plan = [(10.0, 3.0, 1)] if args.quick else [(10.0, 5.0, 3), (50.0, 5.0, 0), (200.0, 5.0, 0)]
    results = [run_rate(rate, window, failovers) for rate, window, failovers in plan]
    print_table(results)
    write_report(args.json, "pipeline", results=results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
