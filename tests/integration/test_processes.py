"""The ``python -m evospikenet`` commands as real processes: router, heartbeat, demo."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys

import pytest

from evospikenet import procs
from support import REPO, wait_until


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_router_runs_until_a_signal_and_exits_zero(processes, free_port, sig):
    router = processes.python("-m", "evospikenet", "router", "--listen",
                              f"tcp/127.0.0.1:{free_port}", log_name="router.log")
    assert procs.wait_for_port("127.0.0.1", free_port, 15)
    os.kill(router.pid, sig)
    assert router.wait(timeout=10) == 0
    wait_until(lambda: procs.port_is_free("127.0.0.1", free_port), 5, what="port released")


def test_router_on_a_busy_port_fails_with_a_clear_error(free_port):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", free_port))
        busy.listen()
        result = subprocess.run(
            [sys.executable, "-m", "evospikenet", "router", "--listen",
             f"tcp/127.0.0.1:{free_port}"], capture_output=True, text=True, timeout=30,
        )
    assert result.returncode == 2
    assert "event=router_failed" in result.stderr and "Traceback" not in result.stderr


def test_heartbeat_node_without_a_router_exits_2_with_one_line(free_port):
    result = subprocess.run(
        [sys.executable, "-m", "evospikenet", "heartbeat", "--id", "x", "--connect",
         f"tcp/127.0.0.1:{free_port}"], capture_output=True, text=True, timeout=60,
        env={**os.environ, "LOG_LEVEL": "ERROR"},
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: cannot reach the Zenoh router")
    assert "Traceback" not in result.stderr


def test_demo_shows_every_node_active_and_leaves_no_process_behind():
    result = subprocess.run(
        [sys.executable, "-m", "evospikenet", "demo", "--nodes", "3", "--duration", "3"],
        capture_output=True, text=True, timeout=90, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert "3/3 active" in result.stdout
    for node in ("pfc-0", "vision-0", "vision-1"):
        assert re.search(rf"^{node}\s+\w+\s+active", result.stdout, re.M), node
    pids = [int(p) for p in re.search(r"child pids: ([\d,]+)", result.stdout)[1].split(",")]
    assert len(pids) == 4
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
