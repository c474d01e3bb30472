"""A Zenoh router in a Python process: what ``python -m evospikenet router`` runs.

In Kubernetes the official zenohd image is the router; on one machine this is.
"""

from __future__ import annotations

import logging
import threading

import zenoh

from .logutil import log_event
from .zenoh_comm import make_config

log = logging.getLogger("evospikenet.router")


def open_router(listen: str | list[str], lease_ms: int | None = None) -> zenoh.Session:
    """Open a router-mode session listening on ``listen`` (multicast scouting off)."""
    return zenoh.open(make_config("router", listen=listen, lease_ms=lease_ms))


def run_router(listen: str | list[str], stop: threading.Event, lease_ms: int | None = None) -> int:
    """Serve until ``stop`` is set; returns the exit code (2 when the endpoint is unusable)."""
    try:
        session = open_router(listen, lease_ms)
    except zenoh.ZError as exc:
        log_event(log, logging.ERROR, "router_failed", listen=listen, error=exc)
        return 2
    log_event(log, logging.INFO, "router_listening", listen=listen, zid=session.zid())
    try:
        stop.wait()
    finally:
        session.close()
        log_event(log, logging.INFO, "router_stopped", listen=listen)
    return 0
