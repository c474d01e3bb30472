"""Helpers for the operator tests: BrainCluster documents, heartbeating members, fake pods."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kmock_api import EmulatedApi

from evospikenet import procs
from support import Processes, Router

HERE = Path(__file__).resolve().parent
NAMESPACE = "brains"
OPERATOR_ARGS = ["run", "--standalone", "--all-namespaces", "-m", "brain_operator.handlers"]

# Small timings keep the suite fast; cleanup stays long so silent nodes stay in the table.
FAST_HEARTBEAT = {
    "intervalSeconds": 0.2,
    "timeoutSeconds": 1.5,
    "cleanupSeconds": 60,
    "startupGraceSeconds": 0,
}


def brain_cluster(name: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    """A BrainCluster document with fast heartbeats (``spec`` is merged on top)."""
    body: dict[str, Any] = {
        "image": "evospikenet/node:test",
        "pfc": {"replicas": 3},
        "vision": {"replicas": 2},
        "heartbeat": dict(FAST_HEARTBEAT),
    }
    for key, value in (spec or {}).items():
        if isinstance(value, dict) and isinstance(body.get(key), dict):
            body[key] = {**body[key], **value}
        else:
            body[key] = copy.deepcopy(value)
    return {
        "apiVersion": "brain.evospikenet.org/v1alpha1",
        "kind": "BrainCluster",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": body,
    }


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_pod(cluster: str, node_id: str, started_at: float, phase: str = "Running") -> dict:
    """The Pod a StatefulSet would create for ``node_id`` (KMock runs no controllers)."""
    role = node_id.split("-", 1)[0]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{cluster}-{node_id}",
            "namespace": NAMESPACE,
            "labels": {
                "app.kubernetes.io/name": "evospikenet",
                "app.kubernetes.io/instance": cluster,
                "app.kubernetes.io/component": role,
                "app.kubernetes.io/part-of": "braincluster",
            },
        },
        "spec": {"containers": [{"name": role, "image": "evospikenet/node:test"}]},
        "status": {"phase": phase, "startTime": rfc3339(started_at)},
    }


def raft_view(state: str, term: int, leader: str | None, commit: int = 0) -> dict[str, Any]:
    return {"state": state, "term": term, "leader": leader, "commit_index": commit}


def led_by(leader: str, term: int, members: list[str]) -> dict[str, dict[str, Any]]:
    """Raft views of a group where ``leader`` leads ``term`` and the others follow it."""
    return {
        node: raft_view("leader" if node == leader else "follower", term, leader, 10 * term)
        for node in members
    }


class Members:
    """Heartbeating node processes (``member.py``) with Raft views from one JSON file."""

    def __init__(self, processes: Processes, router: Router, cluster: str) -> None:
        self.processes = processes
        self.router = router
        self.cluster = cluster
        self.raft_file = processes.tmp_path / f"{cluster}-raft.json"
        self.procs: dict[str, subprocess.Popen] = {}

    def set_raft(self, views: dict[str, dict[str, Any]]) -> None:
        """Atomically replace every member's Raft view (read at each beat)."""
        tmp = self.raft_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(views))
        os.replace(tmp, self.raft_file)

    def start(self, *node_ids: str, interval: float = 0.2) -> Members:
        for node_id in node_ids:
            self.procs[node_id] = self.processes.python(
                str(HERE / "member.py"),
                "--id", node_id,
                "--role", node_id.split("-", 1)[0],
                "--cluster", self.cluster,
                "--connect", self.router.endpoint,
                "--interval", str(interval),
                "--raft-file", str(self.raft_file),
                "--pod", f"{self.cluster}-{node_id}",
                log_name=f"{self.cluster}-{node_id}.log",
            )
        return self

    def kill(self, *node_ids: str) -> None:
        for node_id in node_ids:
            procs.kill(self.procs[node_id])


def status(api: EmulatedApi, name: str) -> dict[str, Any]:
    obj = api.get("BrainCluster", NAMESPACE, name)
    return (obj or {}).get("status") or {}


def condition(status_: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status_.get("conditions") or [] if c.get("type") == kind), {})


def members_by_name(status_: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in status_.get("members") or []}


@contextlib.contextmanager
def operator_running() -> Iterator[Any]:
    """The operator under kopf's KopfRunner, stopped (daemons included) on exit."""
    from kopf.testing import KopfRunner

    runner = KopfRunner(OPERATOR_ARGS, timeout=30)
    try:
        with runner:
            yield runner
    except Exception as exc:
        if "didn't stop" in str(exc):  # show where it hangs
            raise AssertionError(f"{exc}\n{thread_stacks()}") from exc
        raise


def thread_stacks() -> str:
    """Every thread's stack (click swaps sys.stderr while kopf runs, so no faulthandler)."""
    names = {t.ident: t.name for t in threading.enumerate()}
    return "\n".join(
        f"--- thread {names.get(ident, ident)}\n" + "".join(traceback.format_stack(frame))
        for ident, frame in sys._current_frames().items()
    )

