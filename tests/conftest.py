"""Fixtures shared by every test directory."""

from __future__ import annotations

import pytest

from evospikenet.netutil import free_tcp_port, free_tcp_ports
from support import Processes, Router


@pytest.fixture
def free_port() -> int:
    return free_tcp_port()


@pytest.fixture
def free_ports():
    return free_tcp_ports


@pytest.fixture
def processes(tmp_path):
    """Start children with ``processes.python(...)``; all are stopped even when a test fails."""
    group = Processes(tmp_path)
    try:
        yield group
    finally:
        group.stop_all()


@pytest.fixture
def router(processes) -> Router:
    """A real Zenoh router process on 127.0.0.1 with a free port."""
    return Router(processes).start()
