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

    The node command lines are brainctl's (``brain_operator.local.node_argv``) for a small
    BrainCluster spec; node ids are ``pfc-<i>`` and ``vision-<i>``, and each PFC keeps its
    Raft journal in ``tmp_path/pfc-<i>`` so a restarted member keeps its place.
    """

    def __init__(self, processes: Processes, router: Router, cluster: str, pfc: int = 3,
                 vision: int = 2, decision_rate: float = 20.0, heartbeat: float = 0.2) -> None:
        from brain_operator.local import Ports
        from brain_operator.spec import validate

        self.processes = processes
        self.cluster = cluster
        self.spec = validate({
            "apiVersion": "brain.evospikenet.org/v1alpha1", "kind": "BrainCluster",
            "metadata": {"name": cluster},
            "spec": {
                "pfc": {"replicas": pfc, "decisionRateHz": decision_rate},
                "vision": {"replicas": vision},
                "heartbeat": {"intervalSeconds": heartbeat, "timeoutSeconds": 2},
            },
        })
        self.ports = Ports.pick(self.spec, router=router.port)
        self.pfc_ids = self.spec.pfc_node_ids()
        self.vision_ids = self.spec.vision_node_ids()
        self.nodes: dict[str, subprocess.Popen] = {}

    def start_node(self, node_id: str) -> subprocess.Popen:
        from brain_operator.local import node_argv

        argv = node_argv(self.spec, node_id, self.ports, self.processes.tmp_path)
        self.nodes[node_id] = self.processes.python(*argv[1:], log_name=f"{node_id}.log")
        return self.nodes[node_id]

    start_pfc = start_vision = start_node

    def start(self) -> LocalBrain:
        for node_id in [*self.vision_ids, *self.pfc_ids]:
            self.start_node(node_id)
        return self

    def kill(self, node_id: str) -> None:
        procs.kill(self.nodes[node_id])

    def log(self, node_id: str) -> str:
        return (self.processes.tmp_path / f"{node_id}.log").read_text(errors="replace")


class BrainObserver:
    """Watches a running brain the way brainctl does: heartbeats, decisions, spikes, status.

    Used by the process tests and the Docker e2e suite alike.
    """

    def __init__(self, endpoint: str, cluster: str, pfc_ids: list[str],
                 name: str = "observer-t") -> None:
        import queue

        from evospikenet.node_discovery import ZenohNodeDiscovery
        from evospikenet.protocol import Decision, Features, Keys
        from evospikenet.zenoh_comm import ZenohCommunicator

        self.name = name
        self.pfc_ids = list(pfc_ids)
        self.discovery = ZenohNodeDiscovery(
            cluster=cluster, connect=endpoint, timeout=2.0, check_interval=0.1,
            observer_id=f"{name}-discovery",
        ).start()
        self.comm = ZenohCommunicator(name, cluster=cluster, connect=endpoint, max_retries=8)
        self.decisions: queue.Queue = queue.Queue()
        self.spikes: queue.Queue = queue.Queue()
        self.seen: list = []
        self.comm.subscribe(Keys.DECISIONS, self.decisions.put, expected=Decision)
        self.comm.subscribe(Keys.SPIKES_VISION, self.spikes.put, expected=Features)

    def close(self) -> None:
        self.comm.close()
        self.discovery.stop()

    def active(self, node_id: str) -> bool:
        info = self.discovery.nodes.get(node_id)
        return info is not None and info.status == "active"

    def raft(self, node_id: str) -> dict:
        """The Raft view in the node's latest heartbeat ({} unless it is active)."""
        info = self.discovery.nodes.get(node_id)
        if info is None or info.status != "active":
            return {}
        return info.metadata.get("raft") or {}

    def leaders(self) -> list[str]:
        return [n for n in self.pfc_ids if self.raft(n).get("state") == "leader"]

    def leader(self, exclude: str | None = None) -> str | None:
        """The one PFC node whose heartbeat says leader, if exactly one does."""
        found = self.leaders()
        return found[0] if len(found) == 1 and found[0] != exclude else None

    def status(self, node_id: str, decisions: bool = False) -> dict:
        """What the node answers on its ``pfc/<id>/status`` queryable."""
        from evospikenet.protocol import Keys, Status

        reply = self.comm.request(
            Keys.pfc_status(node_id), Status(node_id=self.name, data={"decisions": decisions}),
            timeout=3.0,
        )
        return reply.data

    def last_task_id(self, node_id: str) -> int:
        """The node's last applied task id (-2 when it does not answer)."""
        try:
            return int(self.status(node_id)["last_task_id"])
        except (TimeoutError, KeyError, RuntimeError):
            return -2

    def collect(self) -> list:
        """Decisions received since the last call (all of them are also kept in ``seen``)."""
        import queue

        new = []
        while True:
            try:
                new.append(self.decisions.get_nowait())
            except queue.Empty:
                self.seen += new
                return new

    def wait_decisions(self, count: int, timeout: float, what: str) -> list:
        got: list = []

        def enough() -> bool:
            got.extend(self.collect())
            return len(got) >= count

        wait_until(enough, timeout, interval=0.05, what=what)
        return got
