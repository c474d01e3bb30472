"""Who is in the cluster: heartbeats and liveliness tokens turned into a node table.

A node runs a :class:`HeartbeatPublisher` (a liveliness token plus a heartbeat every
interval). Observers (other nodes, ``brainctl``, the operator) run a
:class:`ZenohNodeDiscovery`, whose ``nodes`` table is built from those alone (DESIGN §4-5).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import zenoh  # noqa: F401  (the fabric this module is about; sessions live in zenoh_comm)

from . import protocol
from .logutil import log_event
from .protocol import Heartbeat, Keys
from .zenoh_comm import PublishError, ZenohCommunicator

log = logging.getLogger("evospikenet.node_discovery")

ACTIVE = "active"
INACTIVE = "inactive"


@dataclass
class NodeInfo:
    """One row of the node table. ``last_seen`` is the observer's clock at the last heartbeat."""

    node_id: str
    status: str = ACTIVE
    last_seen: float = field(default_factory=time.time)
    metadata: dict[str, Any] = field(default_factory=dict)
    host: str | None = None
    role: str | None = None
    started: float | None = None
    alive: bool = True  # liveliness token present (False once its DELETE was seen)
    seq: int = -1


def apply_heartbeat(nodes: dict[str, NodeInfo], hb: Heartbeat, now: float) -> NodeInfo | None:
    """Update the table with one heartbeat (pure; returns the row, or None if ignored).

    A heartbeat of an incarnation whose liveliness token is already gone (a late packet of a
    killed process) is ignored, so it cannot flip the node back to active. A new incarnation
    (another ``started_at``) replaces the row's identity.
    """
    info = nodes.get(hb.node_id)
    if info is not None and not info.alive and info.started == hb.started_at:
        return None
    if info is None:
        info = NodeInfo(node_id=hb.node_id)
        nodes[hb.node_id] = info
    info.status = ACTIVE
    info.alive = True
    info.last_seen = now
    info.host = hb.host
    info.role = hb.role
    info.started = hb.started_at
    info.seq = hb.seq
    info.metadata = {
        "pod": hb.pod,
        "seq": hb.seq,
        "sent_at": hb.sent_at,
        "model_digest": hb.model_digest,
        "raft": hb.raft,
        **hb.extra,
    }
    return info


def check_nodes(
    nodes: dict[str, NodeInfo],
    now: float,
    timeout: float,
    cleanup_threshold: float,
    auto_cleanup: bool,
) -> tuple[list[str], list[str]]:
    """Mark silent nodes inactive and (optionally) forget long-silent ones.

    Pure: the rule the monitor thread applies every second. Returns the ids that went
    inactive now and the ids that were forgotten.
    """
    went_inactive, removed = [], []
    for node_id, info in list(nodes.items()):
        silent = now - info.last_seen
        if auto_cleanup and silent > cleanup_threshold:
            del nodes[node_id]
            removed.append(node_id)
        elif (silent > timeout or not info.alive) and info.status != INACTIVE:
            info.status = INACTIVE
            went_inactive.append(node_id)
    return went_inactive, removed


class ZenohNodeDiscovery:
    """The node table of one cluster, fed by heartbeats and liveliness tokens.

    The constructor only configures; :meth:`start` opens the session and starts a monitor
    thread that calls :meth:`check` every ``check_interval`` seconds.
    """

    def __init__(
        self,
        namespace: str = protocol.NAMESPACE,
        cluster: str = "default",
        timeout: float = 5.0,
        cleanup_threshold: float = 300.0,
        enable_auto_cleanup: bool = True,
        connect: str | list[str] | None = None,
        *,
        observer_id: str | None = None,
        check_interval: float = 1.0,
        on_change: Callable[[str, NodeInfo | None], None] | None = None,
        communicator: ZenohCommunicator | None = None,
    ) -> None:
        self.namespace = namespace
        self.cluster = cluster
        self.timeout = timeout
        self.cleanup_threshold = cleanup_threshold
        self.enable_auto_cleanup = enable_auto_cleanup
        self.connect = connect
        self.observer_id = observer_id or f"observer-{os.getpid()}-{id(self) % 10000}"
        self.check_interval = check_interval
        self.on_change = on_change
        self.nodes: dict[str, NodeInfo] = {}
        self.comm: ZenohCommunicator | None = None
        # A node that already has a communicator shares it instead of opening a second session.
        self._shared_comm = communicator
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._monitor: threading.Thread | None = None

    def start(self) -> ZenohNodeDiscovery:
        if self.comm is not None:
            return self
        self.comm = self._shared_comm or ZenohCommunicator(
            self.observer_id,
            cluster=self.cluster,
            namespace=self.namespace,
            connect=self.connect,
            role="observer",
        )
        self._stop.clear()
        self.comm.subscribe(Keys.heartbeat(), self._on_heartbeat, expected=Heartbeat)
        self.comm.watch_liveliness(Keys.alive(), self._on_liveliness)
        self._monitor = threading.Thread(target=self._run_monitor, name="discovery", daemon=True)
        self._monitor.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._monitor is not None:
            self._monitor.join(timeout=5.0)
            self._monitor = None
        if self.comm is not None:
            if self.comm is not self._shared_comm:
                self.comm.close()
            self.comm = None

    def __enter__(self) -> ZenohNodeDiscovery:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _on_heartbeat(self, hb: Heartbeat) -> None:
        with self._lock:
            info = apply_heartbeat(self.nodes, hb, time.time())
        if info is not None and self.on_change is not None:
            self.on_change(hb.node_id, info)

    def _on_liveliness(self, key: str, alive: bool) -> None:
        node_id = key.rsplit("/", 1)[-1]
        with self._lock:
            info = self.nodes.get(node_id)
            if info is None:
                if not alive:
                    return
                # A token seen before any heartbeat: the node exists, nothing else is known.
                info = NodeInfo(node_id=node_id, status=INACTIVE, last_seen=time.time())
                self.nodes[node_id] = info
            info.alive = alive
            if not alive:
                info.status = INACTIVE
        log_event(log, logging.INFO, "liveliness", node=node_id, alive=alive)
        if self.on_change is not None:
            self.on_change(node_id, info)

    def _run_monitor(self) -> None:
        while not self._stop.wait(self.check_interval):
            self.check()

    def check(self, now: float | None = None) -> list[str]:
        """Apply the timeout and cleanup rules now; returns the ids that were forgotten."""
        with self._lock:
            went_inactive, removed = check_nodes(
                self.nodes,
                time.time() if now is None else now,
                self.timeout,
                self.cleanup_threshold,
                self.enable_auto_cleanup,
            )
            changes = [(n, self.nodes[n]) for n in went_inactive]
        changes += [(n, None) for n in removed]
        for node_id, info in changes:
            event = "node_inactive" if info is not None else "node_forgotten"
            log_event(log, logging.INFO, event, node=node_id)
            if self.on_change is not None:
                self.on_change(node_id, info)
        return removed

    def get_active_nodes(self) -> list[NodeInfo]:
        return [n for n in list(self.nodes.values()) if n.status == ACTIVE]

    def get_nodes_by_role(self, role: str) -> list[NodeInfo]:
        return [n for n in list(self.nodes.values()) if n.role == role]

    def get_node_count(self) -> int:
        return len(self.nodes)


class HeartbeatPublisher:
    """What a node runs: a liveliness token and a heartbeat every ``interval`` seconds.

    ``fields()`` (optional) returns extra heartbeat fields at each beat: ``raft``,
    ``model_digest``, ``pod``, ``host``; any other key goes into ``extra``.
    """

    _KNOWN = ("raft", "model_digest", "pod", "host")

    def __init__(
        self,
        comm: ZenohCommunicator,
        role: str,
        interval: float = 1.0,
        fields: Callable[[], dict[str, Any]] | None = None,
        *,
        pod: str | None = None,
        host: str | None = None,
    ) -> None:
        self.comm = comm
        self.role = role
        self.interval = interval
        self.fields = fields
        self.pod = pod if pod is not None else os.environ.get("POD_NAME")
        self.host = host or socket.gethostname()
        self.seq = 0
        self.failures = 0
        self._key = Keys.heartbeat(comm.node_id)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def build(self) -> Heartbeat:
        extra = dict(self.fields()) if self.fields is not None else {}
        known = {k: extra.pop(k) for k in self._KNOWN if k in extra}
        return Heartbeat(
            node_id=self.comm.node_id,
            role=self.role,
            seq=self.seq,
            sent_at=time.time(),
            started_at=self.comm.started_at,
            host=known.get("host", self.host),
            pod=known.get("pod", self.pod),
            model_digest=known.get("model_digest"),
            raft=known.get("raft"),
            extra=extra,
        )

    def beat(self) -> None:
        """Publish one heartbeat now (a failed one is logged and counted, never raised)."""
        try:
            self.comm.publish(self._key, self.build())
            self.seq += 1
        except (PublishError, RuntimeError) as exc:
            self.failures += 1
            log_event(log, logging.WARNING, "heartbeat_failed", node=self.comm.node_id, error=exc)

    def start(self) -> HeartbeatPublisher:
        self.comm.declare_token(Keys.alive(self.comm.node_id))
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        self.beat()
        while not self._stop.wait(self.interval):
            self.beat()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
