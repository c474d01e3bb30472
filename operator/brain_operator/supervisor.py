"""``brainctl up``'s loop: run the local cluster under the shared health policy."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from evospikenet.logutil import log_event
from evospikenet.protocol import Decision, Keys

from .decision_stats import DecisionFigures, DecisionStats
from .local import LocalCluster, write_state
from .monitor import ClusterMonitor
from .spec import BrainClusterSpec

log = logging.getLogger("brain_operator.supervisor")


def is_available(status: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Available" and c.get("status") == "True"
        for c in status.get("conditions", [])
    )


def replacement_dict(rep) -> dict[str, Any]:
    return {"node": rep.node_id, "role": rep.role, "reason": rep.reason, "at": rep.at,
            "message": rep.message}


class Supervisor:
    """Starts the cluster, restarts what the policy replaces, and keeps the state file."""

    def __init__(self, spec: BrainClusterSpec, *, router_port: int | None = None) -> None:
        self.spec = spec
        self.cluster = LocalCluster(spec, router_port=router_port)
        self.monitor = ClusterMonitor(spec, self.cluster.endpoint, observer_id="brainctl")
        self.stats = DecisionStats()
        self.status: dict[str, Any] = {}
        self.ever_available = False

    def start(self) -> None:
        self.cluster.start()
        try:
            self.monitor.start()
            comm = self.monitor.discovery.comm
            assert comm is not None
            comm.subscribe(Keys.DECISIONS, self.stats.add, expected=Decision)
        except Exception:
            self.cluster.stop()
            raise

    def tick(self, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        members = self.monitor.members(self.cluster.views())
        for rep in self.monitor.plan(members, now):
            log_event(log, logging.WARNING, "replacing", node=rep.node_id, reason=rep.reason,
                      detail=rep.message)
            self.cluster.restart(rep.node_id)
        self.status = self.monitor.build_status(members, now)
        self.ever_available = self.ever_available or is_available(self.status)
        self._write_state()
        return self.status

    def figures(self) -> DecisionFigures:
        return self.stats.figures(time.time())

    def _write_state(self) -> None:
        state = self.cluster.state(os.getpid())
        state["spec"] = self.spec.raw
        state["status"] = self.status
        state["replacements"] = [replacement_dict(r) for r in self.monitor.history]
        state["decisions"] = self.figures().__dict__
        write_state(self.spec.name, state)

    def run(
        self,
        stop: threading.Event,
        duration: float | None,
        show: Callable[[dict[str, Any], DecisionFigures], None],
        refresh: float = 1.0,
    ) -> None:
        """Supervise until ``stop`` is set or ``duration`` seconds have passed."""
        period = min(self.spec.heartbeat.interval_seconds, 0.5)
        deadline = None if not duration else time.monotonic() + duration
        next_show = 0.0
        while not stop.is_set():
            self.tick()
            if time.monotonic() >= next_show:
                show(self.status, self.figures())
                next_show = time.monotonic() + refresh
            if deadline is not None and time.monotonic() >= deadline:
                break
            stop.wait(period)

    def stop(self) -> None:
        self.monitor.stop()
        self.cluster.stop()
        path = self.cluster.dir / "state.json"
        path.unlink(missing_ok=True)
