"""What every brain node runs besides its model: fabric, heartbeats, discovery, HTTP.

- a :class:`ZenohCommunicator` and a :class:`HeartbeatPublisher` (DESIGN §4);
- a :class:`ZenohNodeDiscovery` on the same session, so a node knows its peers;
- model-state sync with replicas of its role (:class:`NodeSynchronizer`);
- ``/healthz`` (the process works), ``/readyz`` (linked to the router and ready for its
  role) and Prometheus ``/metrics`` on ``--http-port``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ..logutil import log_event
from ..model_sync import NodeSynchronizer
from ..node_discovery import HeartbeatPublisher, ZenohNodeDiscovery
from ..zenoh_comm import ZenohCommunicator
from .config import NodeConfig

log = logging.getLogger("evospikenet.node")


class _CommCollector:
    """Exposes the communicator's counters as Prometheus counters at scrape time."""

    def __init__(self, comm: ZenohCommunicator) -> None:
        self.comm = comm

    def collect(self):
        for name, value in self.comm.stats().items():
            family = CounterMetricFamily(f"brain_fabric_{name}", f"Zenoh fabric {name}")
            family.add_metric([], value)
            yield family


class NodeRuntime:
    """Owns the node's session and background services; the role adds its own parts."""

    def __init__(self, config: NodeConfig, fields: Callable[[], dict[str, Any]]) -> None:
        self.config = config
        self.registry = CollectorRegistry()
        self.comm = ZenohCommunicator(
            config.node_id,
            cluster=config.cluster,
            connect=config.connect,
            role=config.role,
            max_retries=8,
            max_delay=2.0,
        )
        self.discovery = ZenohNodeDiscovery(
            cluster=config.cluster,
            timeout=config.heartbeat_timeout,
            communicator=self.comm,
            check_interval=min(1.0, config.heartbeat_interval),
        )
        self._role_fields = fields
        self.sync: NodeSynchronizer | None = None
        self.heartbeat = HeartbeatPublisher(
            self.comm, config.role, config.heartbeat_interval, fields=self._fields, pod=config.pod
        )
        self.ready: Callable[[], bool] = lambda: True
        self.started = time.time()
        self._http: ThreadingHTTPServer | None = None
        self.registry.register(_CommCollector(self.comm))

    # ------------------------------------------------------------ heartbeats and sync

    def _fields(self) -> dict[str, Any]:
        fields = dict(self._role_fields())
        if self.sync is not None:
            self.sync.check(
                n.metadata.get("model_digest")
                for n in self.discovery.get_active_nodes()
                if n.role == self.config.role and n.node_id != self.config.node_id
            )
            fields.update(self.sync.heartbeat_fields())
        return fields

    def peers_of_my_role(self) -> list[str]:
        return sorted(
            n.node_id
            for n in self.discovery.get_active_nodes()
            if n.role == self.config.role and n.node_id != self.config.node_id
        )

    def start_model_sync(self, sync: NodeSynchronizer) -> None:
        """Serve this node's state; fetch a peer's in the background if one is up."""
        self.sync = sync
        sync.serve()

        def bootstrap() -> None:
            deadline = time.monotonic() + 2 * self.config.heartbeat_interval + 0.5
            while time.monotonic() < deadline and not self.peers_of_my_role():
                time.sleep(0.05)
            if self.peers_of_my_role():
                sync.bootstrap(self.peers_of_my_role())

        threading.Thread(target=bootstrap, name="model-sync", daemon=True).start()

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.discovery.start()
        if self.config.http_port:
            self._start_http()
        self.heartbeat.start()
        log_event(
            log, logging.INFO, "node_started", node=self.config.node_id, role=self.config.role,
            cluster=self.config.cluster, http_port=self.config.http_port,
        )

    def close(self) -> None:
        self.heartbeat.stop()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        self.discovery.stop()
        self.comm.close()
        log_event(log, logging.INFO, "node_stopped", node=self.config.node_id)

    # ------------------------------------------------------------ HTTP

    def health(self) -> dict[str, Any]:
        return {
            "node": self.config.node_id,
            "role": self.config.role,
            "connected": self.comm.connected,
            "ready": self.comm.connected and self.ready(),
            "uptime_seconds": round(time.time() - self.started, 3),
            "in_sync": self.sync.in_sync if self.sync else True,
        }

    def _start_http(self) -> None:
        runtime = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, generate_latest(runtime.registry), CONTENT_TYPE_LATEST)
                elif path in ("/healthz", "/readyz"):
                    health = runtime.health()
                    code = 200 if path == "/healthz" or health["ready"] else 503
                    self._send(code, json.dumps(health).encode(), "application/json")
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # probes every few seconds would drown the event log

        self._http = ThreadingHTTPServer((self.config.http_host, self.config.http_port), Handler)
        self._http.daemon_threads = True
        threading.Thread(target=self._http.serve_forever, name="http", daemon=True).start()
