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
