"""One BrainCluster's health loop in Kubernetes: heartbeats and pods in, deletions and status out.

Every heartbeat interval the operator's daemon calls :meth:`Watchdog.step`, which

1. lists the cluster's pods and turns them into ``ProcessView``s (start time, failed);
2. asks the shared :class:`~brain_operator.monitor.ClusterMonitor` (heartbeats over Zenoh plus
   the pure policy) what to replace, deletes those pods — their StatefulSet recreates them
   with the same identity — and posts an Event naming the node and the reason;
3. builds the status and patches it when it changed.

Kubernetes-specific rules, on top of the shared policy:

* A desired member **without a pod** is being (re)created by its StatefulSet, so it counts
  as just started (inside its startup grace): there is nothing to delete, and a deleted pod
  is therefore deleted exactly once.
* A monitor that has just connected has heard nobody yet, and every member would look
  silent: until it has listened for one heartbeat timeout it neither replaces anything nor
  writes status (the previous status stays, so an operator restart causes no flapping).
* Status is compared without the members' ``lastHeartbeat`` (which changes every beat): it is
  patched when anything else changed, and at least every ``refresh_seconds`` so those
  timestamps stay roughly current without a write per heartbeat.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

import urllib3
from kubernetes.client.exceptions import ApiException

from . import metrics
from .kube import Kube
from .monitor import ClusterMonitor, ProcessView
from .policy import MemberObservation, Replacement, rfc3339
from .reconcile import held_back, pfc_membership, pinned_condition
from .render import NODE_ROLES, cluster_selector, selector_labels, selector_string
from .spec import BrainClusterSpec, SpecError, validate

log = logging.getLogger("brain_operator.watchdog")

Poster = Callable[[str, str, str], None]  # (event type, reason, message)
StatusExtras = Callable[[dict[str, Any]], dict[str, Any]]


def parse_time(text: Any) -> float | None:
    """An RFC 3339 timestamp as epoch seconds (None when absent or malformed)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def pod_failed(pod: Mapping[str, Any]) -> bool:
    """Failed phase, a crash loop, or a container that exited with an error."""
    status = pod.get("status") or {}
    if status.get("phase") == "Failed":
        return True
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        if (state.get("waiting") or {}).get("reason") == "CrashLoopBackOff":
            return True
        terminated = state.get("terminated")
        if terminated is not None and terminated.get("exitCode", 0) != 0:
            return True
    return False


@dataclasses.dataclass(frozen=True)
class PodRef:
    """A node's current pod: what a ProcessView shows plus what a deletion needs."""

    view: ProcessView
    uid: str | None


def pod_refs(pods: list[Mapping[str, Any]], cluster: str) -> dict[str, PodRef]:
    """Node id → its pod, for Brain node pods not already terminating.

    StatefulSet pods are named ``<cluster>-<node id>`` (``demo-pfc-2`` is node ``pfc-2``).
    """
    refs = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        component = (meta.get("labels") or {}).get("app.kubernetes.io/component")
        name = meta.get("name") or ""
        if component not in NODE_ROLES or meta.get("deletionTimestamp"):
            continue
        if not name.startswith(f"{cluster}-"):
            continue
        node_id = name.removeprefix(f"{cluster}-")
        started = parse_time((pod.get("status") or {}).get("startTime"))
        if started is None:
            started = parse_time(meta.get("creationTimestamp"))
        view = ProcessView(node_id, started_at=started, failed=pod_failed(pod), pod=name)
        refs[node_id] = PodRef(view, meta.get("uid"))
    return refs


def plannable(
    members: list[MemberObservation], pods: Mapping[str, PodRef], now: float
) -> list[MemberObservation]:
    """Members as the replacement policy sees them: one without a pod has just started."""
    return [
        m if m.node_id in pods else dataclasses.replace(m, started_at=now, failed=False)
        for m in members
    ]


def comparable(status: Mapping[str, Any] | None) -> dict[str, Any]:
    """``status`` without the volatile members' ``lastHeartbeat``."""
    out = copy.deepcopy(dict(status or {}))
    for member in out.get("members") or []:
        if isinstance(member, dict):
            member.pop("lastHeartbeat", None)
    return out


def last_replacement(status: Mapping[str, Any] | None) -> Replacement | None:
    """The ``status.replacements.last`` a previous operator run wrote, as a Replacement."""
    last = ((status or {}).get("replacements") or {}).get("last")
    if not isinstance(last, Mapping):
        return None
    at = parse_time(last.get("time"))
    if at is None or not last.get("node"):
        return None
    return Replacement(
        str(last["node"]),
        str(last.get("role") or "vision"),
        str(last.get("reason") or ""),
        at,
        str(last.get("message") or ""),
    )


class Watchdog:
    """The health loop of one BrainCluster (one per kopf daemon)."""

    def __init__(
        self,
        kube: Kube,
        spec: BrainClusterSpec,
        namespace: str,
        connect: str,
        *,
        post: Poster,
        previous_status: Mapping[str, Any] | None = None,
        refresh_seconds: float = 30.0,
        extras: StatusExtras | None = None,
    ) -> None:
        self.kube = kube
        self.spec = spec
        self.namespace = namespace
        self.connect = connect
        self.post = post
        self.refresh_seconds = refresh_seconds
        self.extras = extras
        self.monitor = ClusterMonitor(spec, connect, observer_id=f"operator-{spec.name}")
        # Carry on where the last operator run left off: counters, transitions, has-run.
        previous = copy.deepcopy(dict(previous_status or {}))
        self.monitor.status = previous or None
        self.monitor.replacements_total = int(
            ((previous.get("replacements") or {}).get("total")) or 0
        )
        self.monitor.last_replacement = last_replacement(previous)
        self.written = comparable(previous)
        self.written_at = time.time() if previous else 0.0
        self.listening_since: float | None = None

    @property
    def vision_selector(self) -> str:
        return selector_string(selector_labels(self.spec, "vision"))

    def start(self) -> None:
        """Connect to the cluster's router (ConnectionError while it is unreachable)."""
        if self.listening_since is None:
            self.monitor.start()
            self.listening_since = time.time()

    def stop(self) -> None:
        if self.listening_since is not None:
            self.monitor.stop()
            self.listening_since = None

    def warming_up(self, now: float) -> bool:
        """True until the monitor has listened for a full heartbeat timeout."""
        started = self.listening_since
        return started is None or now - started < self.spec.heartbeat.timeout_seconds

    def update_spec(self, spec: BrainClusterSpec) -> None:
        """A new generation: desired members, timings and observedGeneration follow it."""
        self.spec = spec
        self.monitor.spec = spec
        self.monitor.discovery.timeout = spec.heartbeat.timeout_seconds
        self.monitor.discovery.cleanup_threshold = spec.heartbeat.cleanup_seconds

    def step(self, now: float | None = None) -> list[Replacement]:
        """One pass of the loop; returns the replacements carried out."""
        now = time.time() if now is None else now
        if self.warming_up(now):
            return []
        listed = self.kube.list_pods(self.namespace, cluster_selector(self.spec))
        pods = pod_refs(listed, self.spec.name)
        members = self.monitor.members({n: ref.view for n, ref in pods.items()})
        done = []
        for rep in self.monitor.plan(plannable(members, pods, now), now):
            ref = pods[rep.node_id]
            if self.kube.delete_pod(self.namespace, ref.view.pod or "", ref.uid):
                self._report(rep, ref)
                done.append(rep)
        status = self.monitor.build_status(members, now, self.vision_selector)
        if self.extras is not None:
            status = self.extras(status)
        self._write(status, now)
        return done

    def _report(self, rep: Replacement, ref: PodRef) -> None:
        reason = "ReplacedFailedMember" if rep.reason == "failed" else "ReplacedSilentMember"
        message = f"deleted pod {ref.view.pod} of {rep.role} node {rep.node_id}: {rep.message}"
        log.info(
            "event=member_replaced cluster=%s node=%s pod=%s reason=%s",
            self.spec.name, rep.node_id, ref.view.pod, rep.reason,
        )
        self.post("Warning", reason, message)
        metrics.REPLACEMENTS.labels(self.namespace, self.spec.name, rep.role, rep.reason).inc()

    def _write(self, status: dict[str, Any], now: float) -> None:
        metrics.observe_status(self.namespace, self.spec.name, status)
        current = comparable(status)
        if current == self.written and now - self.written_at < self.refresh_seconds:
            return
        self.kube.patch_status(self.namespace, self.spec.name, status)
        metrics.STATUS_PATCHES.labels(self.namespace, self.spec.name).inc()
        self.written, self.written_at = current, now


# --------------------------------------------------------------------------------------------
# The daemon loop


class PinNotice:
    """Adds the ``PFCScalingBlocked`` condition and a note while a PFC change (replicas or
    journal storage) is held back."""

    def __init__(self) -> None:
        self.requested: BrainClusterSpec | None = None
        self.applied: BrainClusterSpec | None = None
        self.since: str | None = None

    def update(self, requested: BrainClusterSpec, applied: BrainClusterSpec) -> None:
        self.requested, self.applied = requested, applied
        pinned = held_back(requested, applied)
        if not pinned:
            self.since = None
        elif self.since is None:
            self.since = rfc3339(time.time())

    def __call__(self, status: dict[str, Any]) -> dict[str, Any]:
        if self.since is None or self.requested is None or self.applied is None:
            return status
        condition = pinned_condition(self.requested, self.applied, self.since)
        return {
            **status,
            "message": f"{status.get('message', '')}; {condition['message']}",
            "conditions": [*status.get("conditions", []), condition],
        }


class Stopped(Protocol):
    """kopf's daemon stop flag (also a threading.Event in tests)."""

    def __bool__(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> object: ...


def supervise(
    kube: Kube,
    body: Mapping[str, Any],
    stopped: Stopped,
    *,
    connect_for: Callable[[BrainClusterSpec], str],
    post: Poster,
    refresh_seconds: float = 30.0,
    retry_seconds: float = 2.0,
) -> None:
    """Run the health loop of the BrainCluster ``body`` (a live view) until ``stopped``.

    An invalid spec pauses the loop (the reconcile handler reports it); a new generation is
    picked up without losing the replacement bookkeeping; an unreachable router or API is
    retried, never fatal: the router pod may still be starting.
    """
    namespace = body["metadata"]["namespace"]
    dog: Watchdog | None = None
    requested: BrainClusterSpec | None = None
    notice = PinNotice()
    try:
        while not stopped:
            try:
                spec = validate(body)
            except SpecError:
                stopped.wait(retry_seconds)
                continue
            try:
                if spec != requested:
                    applied = pfc_membership(kube, spec, namespace)
                    notice.update(spec, applied)
                    requested = spec
                    if dog is not None and dog.connect != connect_for(applied):
                        dog.stop()
                        dog = None
                    if dog is not None:
                        dog.update_spec(applied)
                    else:
                        dog = Watchdog(
                            kube, applied, namespace, connect_for(applied), post=post,
                            previous_status=body.get("status"),
                            refresh_seconds=refresh_seconds, extras=notice,
                        )
                dog.start()
                dog.step()
            except ConnectionError as exc:
                log.warning("event=router_unreachable cluster=%s error=%s", spec.name, exc)
                stopped.wait(retry_seconds)
                continue
            except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
                log.warning("event=api_error cluster=%s error=%s", spec.name, exc)
            stopped.wait(dog.spec.heartbeat.interval_seconds if dog else retry_seconds)
    finally:
        if dog is not None:
            dog.stop()
