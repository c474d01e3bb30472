"""Child processes we start and stop by PID / process group — never by name pattern."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence


def python_module(module: str, *args: str) -> list[str]:
    """argv running ``python -m module args`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def spawn(argv: Sequence[str], *, env: dict[str, str] | None = None, log_path=None, **kw):
    """Start a child in its own process group (so stopping it also stops its children)."""
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        return subprocess.Popen(
            list(argv),
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT if log_path else subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            **kw,
        )
    finally:
        if log_path:
            out.close()


def signal_group(proc: subprocess.Popen, sig: int) -> None:
    """Send ``sig`` to the child's process group (its pgid is its pid: see spawn)."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def stop(proc: subprocess.Popen, timeout: float = 5.0) -> int | None:
    """SIGTERM the child's group, SIGKILL it after ``timeout``; returns the exit code."""
    if proc.poll() is None:
        signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            signal_group(proc, signal.SIGKILL)
            proc.wait(timeout=timeout)
    else:
        signal_group(proc, signal.SIGKILL)  # reap anything the child left in its group
    return proc.returncode


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL the child (a real crash, for fault tests) and reap it."""
    signal_group(proc, signal.SIGKILL)
    proc.wait(timeout=10)


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> bool:
    """True once something accepts TCP connections on host:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port (connections in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True
