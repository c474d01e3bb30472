"""Run one RaftConsensus member as its own process (for SIGKILL tests and bench/raft.py).

Prints one JSON object per line on stdout, wall-clock stamped (``t`` = time.time()) so a
parent on the same host can compare them with its own clock:

* ``{"event": "started"}`` once the port is bound;
* ``{"event": "state", "state": ..., "term": ..., "leader": ...}`` on every change;
* ``{"event": "committed", "task_id", "index", "latency"}`` for each proposal this member
  committed (with ``--propose``: while leader, propose task ``last_task_id + 1`` every
  ``--interval`` seconds, up to ``--count`` commits by this process);
* ``{"event": "applied", "last_task_id"}`` whenever this member's decision log grew;
* ``{"event": "rejected" | "error", ...}`` for proposals that failed;
* ``{"event": "status", ...}`` (``RaftConsensus.status()`` plus ``decisions``) on SIGTERM
  or stdin EOF, right before a clean stop.

:class:`MemberProcess` is the parent's side (used by tests/integration/test_raft.py and
bench/raft.py): it spawns this script and collects those events.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from evospikenet.distributed_training import DecisionRejected, RaftConsensus, RaftError


def _emit(event: str, **fields: object) -> None:
    sys.stdout.write(json.dumps({"event": event, "t": time.time(), **fields}) + "\n")
    sys.stdout.flush()


def _parse_peers(text: str) -> dict[str, str]:
    peers = {}
    for item in text.split(","):
        node_id, _, address = item.partition("=")
        peers[node_id] = address
    return peers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--node-id", required=True)
    parser.add_argument("--peers", required=True, help="id=host:port,id=host:port,...")
    parser.add_argument("--heartbeat", type=float, default=0.02)
    parser.add_argument("--election", type=float, default=0.3)
    parser.add_argument("--data-dir")
    parser.add_argument("--batch-appends", action="store_true")
    parser.add_argument("--propose", action="store_true")
    parser.add_argument("--interval", type=float, default=0.01)
    parser.add_argument("--count", type=int, default=0, help="stop proposing after N (0: never)")
    args = parser.parse_args(argv)

    peers = _parse_peers(args.peers)
    member = RaftConsensus(
        args.node_id,
        list(peers),
        args.heartbeat,
        args.election,
        address_of=peers.__getitem__,
        data_dir=args.data_dir,
        batch_appends=args.batch_appends,
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()

    member.start()
    _emit("started", node_id=args.node_id)
    last_view: tuple[object, ...] | None = None
    last_applied_task = -1
    committed = 0
    while not done.is_set():
        status = member.status()
        view = (status["state"], status["term"], status["leader"])
        if view != last_view:
            last_view = view
            _emit("state", state=view[0], term=view[1], leader=view[2])
        if status["last_task_id"] != last_applied_task:
            last_applied_task = status["last_task_id"]
            _emit("applied", last_task_id=last_applied_task)
        want = args.propose and (args.count == 0 or committed < args.count)
        if want and member.leader_ready:
            task_id = member.last_task_id + 1
            began = time.perf_counter()
            try:
                index = member.propose({"task_id": task_id, "node": args.node_id}, timeout=2.0)
            except DecisionRejected as exc:
                _emit("rejected", task_id=task_id, error=str(exc))
            except (RaftError, TimeoutError) as exc:
                _emit("error", task_id=task_id, error=type(exc).__name__)
            else:
                committed += 1
                latency = time.perf_counter() - began
                _emit("committed", task_id=task_id, index=index, latency=latency)
            done.wait(args.interval)
        else:
            done.wait(0.002)
    status = member.status()
    _emit("status", **status, decisions=[d["task_id"] for d in member.decisions])
    member.stop()
    return 0


class MemberProcess:
    """This script in its own process; its JSON-line events collected by a reader thread."""

    def __init__(
        self,
        node_id: str,
        peers: str,
        heartbeat: float,
        election: float,
        data_dir: Path | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.node_id = node_id
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            f"--node-id={node_id}",
            f"--peers={peers}",
            f"--heartbeat={heartbeat}",
            f"--election={election}",
            *([f"--data-dir={data_dir}"] if data_dir is not None else []),
            *(extra_args or []),
        ]
        # stdin stays open: its EOF (our death) stops the member too.
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.events.append(json.loads(line))

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def of(self, event: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e["event"] == event]

    def state(self) -> str | None:
        states = self.of("state")
        return states[-1]["state"] if states else None

    def applied(self) -> int:
        applied = self.of("applied")
        return applied[-1]["last_task_id"] if applied else -1

    def kill(self) -> float:
        """SIGKILL; returns the wall-clock time of the kill."""
        killed_at = time.time()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(5)
        self._reader.join(5)  # every line it printed before dying is in self.events
        return killed_at

    def finish(self, timeout: float = 10.0) -> dict[str, Any]:
        """Stop cleanly (SIGTERM) and return the member's final status with its task ids."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout)
        self._reader.join(timeout)
        statuses = self.of("status")
        if not statuses:
            raise RuntimeError(f"{self.node_id} exited without a final status")
        return statuses[-1]

    def close(self) -> None:
        if self.alive:
            self.proc.kill()
            self.proc.wait(5)
        self._reader.join(5)


if __name__ == "__main__":
    raise SystemExit(main())
