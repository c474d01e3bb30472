"""The health loop both backends share: heartbeats in, replacements and status out.

A backend (the kopf operator, or ``brainctl``'s local supervisor) owns a
:class:`ClusterMonitor`, tells it what it observes of its pods/processes every heartbeat
interval, carries out the replacements it returns, and writes the status it builds. The
decisions themselves are made by the pure functions of :mod:`brain_operator.policy`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from evospikenet.node_discovery import NodeInfo, ZenohNodeDiscovery

from . import policy
from .policy import MemberObservation, Replacement
from .spec import BrainClusterSpec, HeartbeatSpec


@dataclass(frozen=True)
class ProcessView:
    """What a backend sees of one node's pod or process."""

    node_id: str
    started_at: float | None = None
    failed: bool = False
    pod: str | None = None


def role_of(node_id: str) -> str:
    return "pfc" if node_id.startswith("pfc-") else "vision"


def observe(
    spec: BrainClusterSpec,
    nodes: Mapping[str, NodeInfo],
    processes: Mapping[str, ProcessView],
) -> list[MemberObservation]:
    """Join the heartbeat table with the observed pods/processes (pure).

    Every desired member appears (never heard of: no heartbeat), plus any other node that
    heartbeats or has a pod, so leftovers of a scale-down stay visible until forgotten.
    """
    ids = dict.fromkeys([*spec.node_ids(), *sorted(nodes), *sorted(processes)])
    out = []
    for node_id in ids:
        info = nodes.get(node_id)
        proc = processes.get(node_id)
        heard = info is not None and info.seq >= 0
        meta = info.metadata if info is not None else {}
        started = info.started if info is not None else None
        out.append(
            MemberObservation(
                node_id=node_id,
                role=(info.role if info is not None and info.role else role_of(node_id)),
                last_heartbeat=info.last_seen if heard else None,
                alive=bool(info is not None and info.alive),
                started_at=proc.started_at if proc is not None else started,
                failed=bool(proc is not None and proc.failed),
                raft=policy.raft_view(meta.get("raft")),
                pod=(proc.pod if proc is not None and proc.pod else meta.get("pod")),
            )
        )
    return out


def settle_in_flight(
    in_flight: Mapping[str, Replacement],
    members: Iterable[MemberObservation],
    heartbeat: HeartbeatSpec,
    now: float,
) -> dict[str, Replacement]:
    """Replacements still under way, by role (pure).

    One is done when its node heartbeats again from a new incarnation (started after the
    replacement), or gives up after the startup grace plus the timeout, so that a node that
    never comes back can be replaced again.
    """
    table = {m.node_id: m for m in members}
    give_up = heartbeat.startup_grace_seconds + heartbeat.timeout_seconds
    still = {}
    for role, rep in in_flight.items():
        obs = table.get(rep.node_id)
        back = (
            obs is not None
            and policy.member_state(obs, heartbeat, now) == "active"
            and (obs.started_at or 0) >= rep.at - 1.0
            and (obs.last_heartbeat or 0) > rep.at
        )
        if not back and now - rep.at < give_up:
            still[role] = rep
    return still


class ClusterMonitor:
    """Discovery of one cluster plus the bookkeeping of its replacements and status."""

    def __init__(
        self,
        spec: BrainClusterSpec,
        connect: str | list[str],
        *,
        observer_id: str | None = None,
    ) -> None:
        self.spec = spec
        self.discovery = ZenohNodeDiscovery(
            cluster=spec.name,
            connect=connect,
            timeout=spec.heartbeat.timeout_seconds,
            cleanup_threshold=spec.heartbeat.cleanup_seconds,
            check_interval=min(1.0, spec.heartbeat.interval_seconds),
            observer_id=observer_id,
        )
        self.in_flight: dict[str, Replacement] = {}
        self.replacements_total = 0
        self.last_replacement: Replacement | None = None
        self.history: list[Replacement] = []
        self.status: dict[str, Any] | None = None

    def start(self) -> ClusterMonitor:
        self.discovery.start()
        return self

    def stop(self) -> None:
        self.discovery.stop()

    def __enter__(self) -> ClusterMonitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def members(self, processes: Mapping[str, ProcessView]) -> list[MemberObservation]:
        return observe(self.spec, dict(self.discovery.nodes), processes)

    def plan(self, members: list[MemberObservation], now: float | None = None) -> list[Replacement]:
        """Replacements to carry out now; they count as in flight from here on."""
        now = time.time() if now is None else now
        self.in_flight = settle_in_flight(self.in_flight, members, self.spec.heartbeat, now)
        plans = policy.plan_replacements(self.spec, members, now, self.in_flight)
        for rep in plans:
            self.in_flight[rep.role] = rep
            self.replacements_total += 1
            self.last_replacement = rep
            self.history.append(rep)
        return plans

    def build_status(
        self,
        members: list[MemberObservation],
        now: float | None = None,
        vision_selector: str | None = None,
    ) -> dict[str, Any]:
        self.status = policy.build_status(
            self.spec,
            members,
            time.time() if now is None else now,
            replacements_total=self.replacements_total,
            last_replacement=self.last_replacement,
            observed_generation=self.spec.generation,
            previous=self.status,
            vision_selector=vision_selector,
        )
        return self.status
