"""Prometheus metrics of the operator (served on ``--metrics-port``; the chart's ServiceMonitor
scrapes them)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

PHASES = ("Pending", "Running", "Degraded", "QuorumLost", "Failed")

REGISTRY = CollectorRegistry()
REPLACEMENTS = Counter(
    "brain_operator_replacements", "Pods the operator deleted to replace a member",
    ["namespace", "cluster", "role", "reason"], registry=REGISTRY,
)
STATUS_PATCHES = Counter(
    "brain_operator_status_patches", "Status patches written", ["namespace", "cluster"],
    registry=REGISTRY,
)
PHASE = Gauge(
    "brain_operator_cluster_phase", "1 for the phase a BrainCluster is in, 0 for the others",
    ["namespace", "cluster", "phase"], registry=REGISTRY,
)
READY = Gauge(
    "brain_operator_members_ready", "Healthy members per role", ["namespace", "cluster", "role"],
    registry=REGISTRY,
)
TERM = Gauge(
    "brain_operator_leader_term", "Raft term of the reported leader (0: no leader)",
    ["namespace", "cluster"], registry=REGISTRY,
)


def observe_status(namespace: str, cluster: str, status: Mapping[str, Any]) -> None:
    """Mirror one status object into the gauges."""
    phase = status.get("phase")
    for name in PHASES:
        PHASE.labels(namespace, cluster, name).set(1 if name == phase else 0)
    for role in ("pfc", "vision"):
        READY.labels(namespace, cluster, role).set((status.get(role) or {}).get("ready", 0))
    TERM.labels(namespace, cluster).set((status.get("leader") or {}).get("term", 0))


def serve(port: int, host: str = "0.0.0.0") -> None:
    """Serve ``/metrics`` from a background thread (0 disables it)."""
    if port:
        start_http_server(port, addr=host, registry=REGISTRY)
