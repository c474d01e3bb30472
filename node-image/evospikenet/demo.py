"""The foundation demo behind ``make run``: a router and heartbeat nodes on this machine."""

from __future__ import annotations

import threading
import time

from . import procs
from .netutil import free_tcp_port
from .node_discovery import ZenohNodeDiscovery


def format_table(nodes) -> str:
    """The node table as fixed-width text, one node per line, sorted by id."""
    rows = [f"{'NODE':<12} {'ROLE':<8} {'STATUS':<9} {'SEQ':>5} {'LAST SEEN':>10}"]
    now = time.time()
    for info in sorted(nodes, key=lambda n: n.node_id):
        age = f"{now - info.last_seen:.1f}s ago"
        rows.append(
            f"{info.node_id:<12} {info.role or '-':<8} {info.status:<9} {info.seq:>5} {age:>10}"
        )
    return "\n".join(rows)


def run_demo(nodes: int, duration: float, cluster: str, stop: threading.Event) -> int:
    port = free_tcp_port()
    endpoint = f"tcp/127.0.0.1:{port}"
    children = [procs.spawn(procs.python_module("evospikenet", "router", "--listen", endpoint))]
    try:
        if not procs.wait_for_port("127.0.0.1", port, 15):
            print(f"error: the router did not start listening on {endpoint}")
            return 1
        roles = ["pfc" if i == 0 else "vision" for i in range(nodes)]
        for i, role in enumerate(roles):
            node_id = f"{role}-{i if role == 'pfc' else i - 1}"
            argv = procs.python_module(
                "evospikenet", "heartbeat", "--id", node_id, "--role", role,
                "--cluster", cluster, "--connect", endpoint, "--interval", "0.5",
            )
            children.append(procs.spawn(argv))
        pids = ",".join(str(c.pid) for c in children)
        print(f"router on {endpoint}; {nodes} demo nodes in cluster {cluster!r}", flush=True)
        print(f"child pids: {pids}", flush=True)
        discovery = ZenohNodeDiscovery(cluster=cluster, connect=endpoint, timeout=2.0)
        deadline = time.monotonic() + duration if duration > 0 else None
        with discovery:
            while not stop.wait(1.0):
                active = len(discovery.get_active_nodes())
                print(f"\n{active}/{nodes} active", flush=True)
                print(format_table(discovery.nodes.values()), flush=True)
                if deadline is not None and time.monotonic() >= deadline:
                    break
        return 0
    finally:
        for child in reversed(children):
            procs.stop(child)
