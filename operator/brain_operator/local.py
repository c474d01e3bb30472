"""The local backend: one BrainCluster as processes on this machine (``brainctl up``).

Everything a running cluster needs to be found again (router endpoint, PIDs, ports) goes in
a state directory, ``$BRAINCTL_HOME/<cluster>/`` (default ``~/.brainctl``), so that
``brainctl status``, ``kill`` and ``down`` work from another shell.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evospikenet import procs
from evospikenet.netutil import free_tcp_ports

from .monitor import ProcessView
from .spec import BrainClusterSpec

HOST = "127.0.0.1"


class LocalError(RuntimeError):
    """A problem a user can fix (busy port, cluster already running, nothing running)."""


def home() -> Path:
    return Path(os.environ.get("BRAINCTL_HOME") or Path.home() / ".brainctl")


def state_dir(cluster: str) -> Path:
    return home() / cluster


@dataclass
class Ports:
    router: int
    raft: dict[str, int]
    http: dict[str, int]

    @classmethod
    def pick(cls, spec: BrainClusterSpec, router: int | None = None) -> Ports:
        ids = spec.node_ids()
        free = free_tcp_ports(len(ids) + spec.pfc.replicas + 1)
        router_port = router if router is not None else free[-1]
        pfc = spec.pfc_node_ids()
        return cls(
            router=router_port,
            raft=dict(zip(pfc, free[len(ids):len(ids) + len(pfc)], strict=True)),
            http=dict(zip(ids, free[: len(ids)], strict=True)),
        )


def router_argv(ports: Ports) -> list[str]:
    return procs.python_module("evospikenet", "router", "--listen", f"tcp/{HOST}:{ports.router}")


def node_argv(spec: BrainClusterSpec, node_id: str, ports: Ports, data_root: Path) -> list[str]:
    """The command line of one node, from the spec alone (pure)."""
    hb = spec.heartbeat
    role = "pfc" if node_id in spec.pfc_node_ids() else "vision"
    argv = procs.python_module(
        "evospikenet", "node", "--role", role, "--id", node_id, "--cluster", spec.name,
        "--connect", f"tcp/{HOST}:{ports.router}",
        "--http-host", HOST, "--http-port", str(ports.http[node_id]),
        "--heartbeat-interval", str(hb.interval_seconds),
        "--heartbeat-timeout", str(hb.timeout_seconds),
        "--seed", str(spec.seed), "--vision-size", str(spec.vision.model.size),
    )
    if role == "vision":
        return [*argv, "--time-steps", str(spec.vision.model.time_steps)]
    pfc = spec.pfc
    addresses = ",".join(f"{n}={HOST}:{p}" for n, p in ports.raft.items())
    return [
        *argv,
        "--peers", ",".join(spec.pfc_node_ids()), "--raft-address", addresses,
        "--data-dir", str(data_root / node_id),
        "--decision-rate", str(pfc.decision_rate_hz),
        "--raft-heartbeat-interval", str(pfc.raft.heartbeat_interval_seconds),
        "--election-timeout", str(pfc.raft.election_timeout_seconds),
        "--pfc-size", str(pfc.model.size), "--num-modules", str(pfc.model.num_modules),
        "--n-heads", str(pfc.model.n_heads), "--time-steps", str(pfc.model.time_steps),
    ]


@dataclass
class Child:
    node_id: str
    proc: subprocess.Popen
    started_at: float = field(default_factory=time.time)


class LocalCluster:
    """Starts, watches, restarts and stops the processes of one cluster."""

    def __init__(self, spec: BrainClusterSpec, *, router_port: int | None = None) -> None:
        self.spec = spec
        self.dir = state_dir(spec.name)
        self.ports = Ports.pick(spec, router_port)
        self.children: dict[str, Child] = {}
        self.router: Child | None = None

    @property
    def endpoint(self) -> str:
        return f"tcp/{HOST}:{self.ports.router}"

    def _spawn(self, node_id: str, argv: list[str]) -> Child:
        logs = self.dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        return Child(node_id, procs.spawn(argv, log_path=logs / f"{node_id}.log"))

    def start(self, router_timeout: float = 15.0) -> None:
        if not procs.port_is_free(HOST, self.ports.router):
            raise LocalError(f"port {self.ports.router} is busy: pick another with --port")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.router = self._spawn("router", router_argv(self.ports))
        if not procs.wait_for_port(HOST, self.ports.router, router_timeout):
            self.stop()
            raise LocalError(f"the router did not listen on {self.endpoint} (see {self.dir}/logs)")
        for node_id in [*self.spec.vision_node_ids(), *self.spec.pfc_node_ids()]:
            self.start_node(node_id)

    def start_node(self, node_id: str) -> None:
        argv = node_argv(self.spec, node_id, self.ports, self.dir / "data")
        self.children[node_id] = self._spawn(node_id, argv)

    def restart(self, node_id: str) -> None:
        """Replace a node by a new process with the same id (and Raft data dir)."""
        child = self.children.get(node_id)
        if child is not None:
            procs.stop(child.proc, timeout=3.0)
        self.start_node(node_id)

    def views(self) -> dict[str, ProcessView]:
        return {
            c.node_id: ProcessView(c.node_id, started_at=c.started_at,
                                   failed=c.proc.poll() is not None)
            for c in self.children.values()
        }

    def stop(self) -> None:
        for child in reversed(list(self.children.values())):
            procs.signal_group(child.proc, signal.SIGTERM)
        for child in self.children.values():
            procs.stop(child.proc, timeout=5.0)
        if self.router is not None:
            procs.stop(self.router.proc, timeout=5.0)

    # ------------------------------------------------------------ the state file

    def state(self, supervisor_pid: int) -> dict[str, Any]:
        return {
            "cluster": self.spec.name,
            "endpoint": self.endpoint,
            "supervisor_pid": supervisor_pid,
            "router_pid": self.router.proc.pid if self.router else None,
            "nodes": {c.node_id: {"pid": c.proc.pid, "started_at": c.started_at,
                                  "http_port": self.ports.http[c.node_id]}
                      for c in self.children.values()},
        }


def write_state(cluster: str, state: dict[str, Any]) -> None:
    path = state_dir(cluster) / "state.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
    tmp.replace(path)  # readers never see half a file


def read_state(cluster: str | None) -> dict[str, Any]:
    """The state of a running cluster (the only one when ``cluster`` is None)."""
    if cluster is None:
        running = sorted(p.parent.name for p in home().glob("*/state.json")
                         if pid_alive(json.loads(p.read_text()).get("supervisor_pid")))
        if not running:
            raise LocalError("no cluster is running (start one with: brainctl up -f FILE)")
        if len(running) > 1:
            raise LocalError(f"several clusters are running ({', '.join(running)}): "
                             "pick one with --cluster")
        cluster = running[0]
    path = state_dir(cluster) / "state.json"
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        raise LocalError(f"cluster {cluster!r} is not running (no {path})") from None
    if not pid_alive(state.get("supervisor_pid")):
        raise LocalError(f"cluster {cluster!r} is not running (its supervisor is gone)")
    return state


def pid_alive(pid: Any) -> bool:
    """True when ``pid`` runs one of our Python processes (guards against PID reuse)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return sys.executable.encode() in cmdline or b"brainctl" in cmdline or b"evospikenet" in cmdline
