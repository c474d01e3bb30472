"""Helpers for tests that run real routers and node processes on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from evospikenet import procs
from evospikenet.netutil import free_tcp_port

REPO = Path(__file__).resolve().parents[1]


def wait_until(
    predicate: Callable[[], object], timeout: float, interval: float = 0.02, what: str = ""
) -> object:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


class Processes:
    """Children started by one test; every one is stopped (by process group) at teardown."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.children: list[subprocess.Popen] = []

    def python(self, *args: str, log_name: str | None = None, **kw) -> subprocess.Popen:
        log_path = self.tmp_path / log_name if log_name else None
        proc = procs.spawn([sys.executable, *args], log_path=log_path, **kw)
        self.children.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.children):
            procs.stop(proc, timeout=5)


class Router:
    """A real Zenoh router process (``python -m evospikenet router``) on a free port."""

    def __init__(self, processes: Processes, port: int | None = None) -> None:
        self.processes = processes
        self.port = port or free_tcp_port()
        self.endpoint = f"tcp/127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Router:
        self.proc = self.processes.python(
            "-m", "evospikenet", "router", "--listen", self.endpoint,
            log_name=f"router-{self.port}.log",
        )
        if not procs.wait_for_port("127.0.0.1", self.port, timeout=15):
            raise RuntimeError(f"router did not listen on {self.endpoint}")
        return self

    def kill(self) -> None:
        assert self.proc is not None
        procs.kill(self.proc)

    def restart(self) -> None:
        self.kill()
        wait_until(
            lambda: procs.port_is_free("127.0.0.1", self.port), 10, what="router port freed"
        )
        self.start()


class LocalBrain:
    """Router + PFC + Vision node processes on loopback, for process tests.

    Node ids are ``pfc-<i>`` and ``vision-<i>``; each PFC keeps its Raft journal in
    ``tmp_path/pfc-<i>`` so a restarted member keeps its place.
    """

    def __init__(self, processes: Processes, router: Router, cluster: str, pfc: int = 3,
                 vision: int = 2, decision_rate: float = 20.0, heartbeat: float = 0.2) -> None:
        from evospikenet.netutil import free_tcp_ports

        self.processes = processes
        self.router = router
        self.cluster = cluster
        self.pfc_ids = [f"pfc-{i}" for i in range(pfc)]
        self.vision_ids = [f"vision-{i}" for i in range(vision)]
        ports = free_tcp_ports(pfc)
        self.raft_addresses = {
            n: f"127.0.0.1:{p}" for n, p in zip(self.pfc_ids, ports, strict=True)
        }
        self.decision_rate = decision_rate
        self.heartbeat = heartbeat
        self.nodes: dict[str, subprocess.Popen] = {}

    def _common(self, node_id: str, role: str) -> list[str]:
        return [
            "-m", "evospikenet", "node", "--role", role, "--id", node_id,
            "--cluster", self.cluster, "--connect", self.router.endpoint,
            "--heartbeat-interval", str(self.heartbeat), "--heartbeat-timeout", "2",
            "--vision-size", "512",
        ]

    def start_pfc(self, node_id: str) -> subprocess.Popen:
        mapping = ",".join(f"{n}={a}" for n, a in self.raft_addresses.items())
        argv = self._common(node_id, "pfc") + [
            "--peers", ",".join(self.pfc_ids), "--raft-address", mapping,
            "--data-dir", str(self.processes.tmp_path / node_id),
            "--decision-rate", str(self.decision_rate),
        ]
        self.nodes[node_id] = self.processes.python(*argv, log_name=f"{node_id}.log")
        return self.nodes[node_id]

    def start_vision(self, node_id: str) -> subprocess.Popen:
        argv = self._common(node_id, "vision")
        self.nodes[node_id] = self.processes.python(*argv, log_name=f"{node_id}.log")
        return self.nodes[node_id]

    def start(self) -> LocalBrain:
        for node_id in self.vision_ids:
            self.start_vision(node_id)
        for node_id in self.pfc_ids:
            self.start_pfc(node_id)
        return self

    def kill(self, node_id: str) -> None:
        procs.kill(self.nodes[node_id])

    def log(self, node_id: str) -> str:
        return (self.processes.tmp_path / f"{node_id}.log").read_text(errors="replace")
