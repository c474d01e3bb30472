"""CPU latency/throughput of the spiking models at their default sizes.

    python bench/models.py [--json PATH] [--threads N] [--budget SECONDS]

Measures what a node does per request: ``VisualModule.encode`` (render + encode one frame,
a Vision node's reply), ``VisualModule.forward`` on a (20, 512) feature batch, and
``PFCDecisionEngine.decide`` (the PFC leader's per-task step). Each case warms up, then
times single calls with ``time.perf_counter`` until it has ``--iters`` calls or its time
budget is spent. One intra-op thread by default: a node shares its CPU with the Zenoh and
Raft threads, and single-thread figures compare across machines.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from _report import write_report

from evospikenet.pfc import PFCDecisionEngine
from evospikenet.vision import VisualModule

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "models.json"
WARMUP_CALLS = 20


@dataclass(frozen=True)
class CaseResult:
    name: str
    calls: int
    items_per_call: int
    median_ms: float
    p95_ms: float
    mean_ms: float
    calls_per_s: float
    items_per_s: float


def time_case(
    name: str,
    call: Callable[[int], object],
    *,
    iters: int,
    budget_s: float,
    items_per_call: int = 1,
) -> CaseResult:
    """Time ``call(i)`` for i = 0, 1, ... after a warm-up; stop at ``iters`` or the budget."""
    for i in range(WARMUP_CALLS):
        call(i)
    latencies: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(latencies) < iters and time.perf_counter() < deadline:
        start = time.perf_counter()
        call(len(latencies))
        latencies.append(time.perf_counter() - start)
    seconds = np.asarray(latencies)
    calls_per_s = len(seconds) / float(seconds.sum())
    return CaseResult(
        name=name,
        calls=len(seconds),
        items_per_call=items_per_call,
        median_ms=float(np.median(seconds)) * 1e3,
        p95_ms=float(np.percentile(seconds, 95)) * 1e3,
        mean_ms=float(seconds.mean()) * 1e3,
        calls_per_s=calls_per_s,
        items_per_s=calls_per_s * items_per_call,
    )


def run_cases(iters: int, budget_s: float) -> list[CaseResult]:
    vision = VisualModule()
    pfc = PFCDecisionEngine()
    batch = torch.rand(20, vision.size, generator=torch.Generator().manual_seed(0))
    # Real Vision output as PFC input, cycled: decide() then sees what it sees in a cluster.
    features = [vision.encode(task, 0) for task in range(32)]
    return [
        time_case("vision.encode", lambda i: vision.encode(i, 0), iters=iters, budget_s=budget_s),
        time_case(
            "vision.forward(20x512)",
            lambda _: vision(batch),
            iters=iters,
            budget_s=budget_s,
            items_per_call=batch.shape[0],
        ),
        time_case(
            "pfc.decide",
            lambda i: pfc.decide(features[i % len(features)]),
            iters=iters,
            budget_s=budget_s,
        ),
    ]


def format_table(results: Sequence[CaseResult]) -> str:
    header = f"{'case':<24}{'calls':>7}{'median ms':>11}{'p95 ms':>9}{'calls/s':>10}{'items/s':>10}"
    rows = [
        f"{r.name:<24}{r.calls:>7}{r.median_ms:>11.3f}{r.p95_ms:>9.3f}"
        f"{r.calls_per_s:>10.0f}{r.items_per_s:>10.0f}"
        for r in results
    ]
    return "\n".join([header, "-" * len(header), *rows])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write results")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--iters", type=int, default=2000, help="max timed calls per case")
    parser.add_argument("--budget", type=float, default=4.0, help="max seconds per case")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads < 1 or args.iters < 1 or args.budget <= 0:
        print("error: --threads and --iters must be >= 1 and --budget > 0", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    results = run_cases(args.iters, args.budget)
    print(format_table(results))
    write_report(
        args.json, "models", torch=torch.__version__, threads=torch.get_num_threads(),
        processor=platform.processor(), results=[asdict(r) for r in results],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
