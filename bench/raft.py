"""Raft decision-log figures: commit latency and leader failover, 3 local processes.

    python bench/raft.py [--json PATH] [--commits N] [--reps N]

Each member is ``tests/integration/raft_member.py`` (one ``RaftConsensus`` per process,
127.0.0.1, free ports, data dirs in a temp dir), so these are the same code paths a PFC pod
runs, minus the network.

* Commit latency: the leader proposes tasks one at a time (blocking ``propose``) and reports
  each call's wall time. Measured per ``heartbeat_interval`` in {0.1, 0.05, 0.02}, with
  appends sent at once (our default) and with pysyncobj's batching (``batch_appends``),
  where a write waits for the next append period.
* Failover: SIGKILL of the leader while it commits; time from the kill to another member
  reporting ``leader`` (election) and to that leader's first commit (decisions resume). The
  killed member is restarted with its data dir between repetitions.

Figures, not pass/fail. The CRD defaults are picked from them (targets: failover < 2 s,
commit p95 < 25 ms).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from _report import write_report  # noqa: E402
from raft_member import MemberProcess  # noqa: E402 (lives next to the tests that use it)

from evospikenet.netutil import free_tcp_ports  # noqa: E402

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "raft.json"
IDS = ["pfc-0", "pfc-1", "pfc-2"]
LATENCY_HEARTBEATS = (0.1, 0.05, 0.02)
FAILOVER_ELECTIONS = (0.3, 0.5, 1.0)
FAILOVER_HEARTBEAT = 0.02


def _wait(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.002)
    return value


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[rank]


class Group:
    """Three member processes on fresh ports; closed by :meth:`close`."""

    def __init__(self, heartbeat: float, election: float, data_root: Path, extra: list[str]):
        ports = free_tcp_ports(3)
        self.peers = ",".join(f"{i}=127.0.0.1:{p}" for i, p in zip(IDS, ports, strict=True))
        self.heartbeat, self.election = heartbeat, election
        self.data_root, self.extra = data_root, extra
        self.procs = {i: self.spawn(i) for i in IDS}
        self.spawned = list(self.procs.values())

    def spawn(self, node_id: str) -> MemberProcess:
        return MemberProcess(
            node_id,
            self.peers,
            self.heartbeat,
            self.election,
            self.data_root / node_id,
            ["--propose", *self.extra],
        )

    def restart(self, node_id: str) -> MemberProcess:
        self.procs[node_id] = proc = self.spawn(node_id)
        self.spawned.append(proc)
        return proc

    def committing_leader(self, excluding: MemberProcess | None = None) -> MemberProcess | None:
        leaders = [
            p
            for p in self.procs.values()
            if p.alive and p is not excluding and p.state() == "leader" and p.of("committed")
        ]
        return leaders[0] if len(leaders) == 1 else None

    def close(self) -> None:
        for proc in self.spawned:
            proc.close()


def bench_latency(heartbeat: float, batch: bool, commits: int, data_root: Path) -> dict[str, Any]:
    election = max(0.3, 5 * heartbeat)
    extra = [f"--count={commits}", "--interval=0.002", *(["--batch-appends"] if batch else [])]
    group = Group(heartbeat, election, data_root, extra)
    try:
        leader = _wait(group.committing_leader, 15.0, "a committing leader")
        _wait(lambda: len(leader.of("committed")) >= commits, 60.0, f"{commits} commits")
        # The first commits of a term race the leader's own no-op; skip them as warm-up.
        latencies = [c["latency"] * 1000 for c in leader.of("committed")[5:]]
    finally:
        group.close()
    return {
        "heartbeat_interval": heartbeat,
        "election_timeout": election,
        "batch_appends": batch,
        "commits": len(latencies),
        "p50_ms": _percentile(latencies, 50),
        "p95_ms": _percentile(latencies, 95),
        "p99_ms": _percentile(latencies, 99),
        "mean_ms": statistics.fmean(latencies),
    }


def bench_failover(election: float, reps: int, data_root: Path) -> dict[str, Any]:
    group = Group(FAILOVER_HEARTBEAT, election, data_root, ["--interval=0.01"])
    elections: list[float] = []
    resumes: list[float] = []
    try:
        leader = _wait(group.committing_leader, 15.0, "a committing leader")
        for _ in range(reps):
            _wait(lambda ld=leader: len(ld.of("committed")) >= 3, 10.0, "commits")
            killed_at = leader.kill()
            new = _wait(lambda ld=leader: group.committing_leader(ld), 15.0, "a new leader")
            # Its first "leader" state line after the kill, and its first commit after it.
            elected = min(
                e["t"] for e in new.of("state") if e["state"] == "leader" and e["t"] > killed_at
            )
            resumed = min(c["t"] for c in new.of("committed") if c["t"] > killed_at)
            elections.append(elected - killed_at)
            resumes.append(resumed - killed_at)
            restarted = group.restart(leader.node_id)
            target = new.of("committed")[-1]["task_id"]
            _wait(lambda r=restarted, t=target: r.applied() >= t, 15.0, "restarted member")
            leader = new
    finally:
        group.close()
    return {
        "heartbeat_interval": FAILOVER_HEARTBEAT,
        "election_timeout": election,
        "reps": len(elections),
        "election_s": [round(x, 3) for x in elections],
        "resume_s": [round(x, 3) for x in resumes],
        "election_max_s": max(elections),
        "resume_max_s": max(resumes),
        "resume_median_s": statistics.median(resumes),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="result file")
    parser.add_argument("--commits", type=int, default=150, help="proposals per latency case")
    parser.add_argument("--batch-commits", type=int, default=40, help="same, batched appends")
    parser.add_argument("--reps", type=int, default=3, help="leader kills per election timeout")
    args = parser.parse_args(argv)

    began = time.monotonic()
    latency: list[dict[str, Any]] = []
    failover: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-raft-") as tmp:
        root = Path(tmp)
        for n, (heartbeat, batch) in enumerate(
            (hb, batch) for batch in (False, True) for hb in LATENCY_HEARTBEATS
        ):
            commits = args.batch_commits if batch else args.commits
            latency.append(bench_latency(heartbeat, batch, commits, root / f"lat{n}"))
        for n, election in enumerate(FAILOVER_ELECTIONS):
            failover.append(bench_failover(election, args.reps, root / f"fail{n}"))

    print("commit latency (blocking propose, 3 processes on 127.0.0.1)")
    print(f"{'heartbeat s':>12} {'batched':>8} {'n':>5} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for r in latency:
        print(
            f"{r['heartbeat_interval']:>12} {str(r['batch_appends']):>8} {r['commits']:>5} "
            f"{r['p50_ms']:>8.2f} {r['p95_ms']:>8.2f} {r['p99_ms']:>8.2f}"
        )
    print(f"\nleader failover after SIGKILL (heartbeat {FAILOVER_HEARTBEAT} s)")
    print(f"{'election s':>11} {'new leader s (each)':>28} {'first commit s (each)':>28}")
    for r in failover:
        print(f"{r['election_timeout']:>11} {str(r['election_s']):>28} {str(r['resume_s']):>28}")
    elapsed = time.monotonic() - began
    print(f"\n{elapsed:.1f} s total")

    write_report(args.json, "raft", members=3, elapsed_s=round(elapsed, 1), latency=latency,
                 failover=failover)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
