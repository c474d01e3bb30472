"""The kopf handlers of the brain operator: thin, each delegates to a plain function.

* create / resume / update of a BrainCluster → :func:`reconcile.reconcile` applies the
  children (create or patch, owned by the BrainCluster);
* a daemon per BrainCluster → :func:`watchdog.supervise`, the health loop (heartbeats over
  Zenoh, pod replacement, status);
* an invalid spec → status phase Failed, a Warning event naming the field, and a
  ``kopf.PermanentError`` (retrying cannot fix a spec);
* a ``spec.pfc.replicas`` change → not applied (fixed Raft membership), a Warning event and
  the ``PFCScalingBlocked`` condition.

Options come from :class:`OperatorOptions` (``python -m brain_operator`` flags, or
``BRAIN_OPERATOR_*`` environment variables when kopf is started some other way, as in tests).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from . import policy, reconcile, render, watchdog
from .kube import Kube, NoCredentials, load_client, post_event
from .spec import BrainClusterSpec, SpecError

RESOURCE = (render.GROUP, render.VERSION, render.PLURAL)
DEFAULT_ROUTER_ENDPOINT = "tcp/{name}-router.{namespace}.svc:{port}"
ENV_PREFIX = "BRAIN_OPERATOR_"

log = logging.getLogger("brain_operator.handlers")


@dataclass(frozen=True)
class OperatorOptions:
    """How the operator reaches clusters and reports.

    ``router_endpoint`` is a template (``{name}``, ``{namespace}``, ``{port}``) for the Zenoh
    router the operator's monitor connects to: the router Service by default; tests point it
    at a router on 127.0.0.1.
    """

    router_endpoint: str = DEFAULT_ROUTER_ENDPOINT
    status_refresh_seconds: float = 30.0
    event_level: str = "INFO"

    def __post_init__(self) -> None:
        try:
            self.router_endpoint.format(name="n", namespace="ns", port=1)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"router endpoint template {self.router_endpoint!r} is invalid ({exc}); "
                "use the placeholders {name}, {namespace} and {port}"
            ) from None
        if logging.getLevelName(self.event_level.upper()) not in (10, 20, 30, 40, 50):
            raise ValueError(f"event level {self.event_level!r}: use INFO, WARNING or ERROR")
        if self.status_refresh_seconds <= 0:
            raise ValueError("status refresh seconds must be > 0")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> OperatorOptions:
        def get(name: str, default: str) -> str:
            return environ.get(ENV_PREFIX + name, default)

        try:
            refresh = float(get("STATUS_REFRESH_SECONDS", str(cls.status_refresh_seconds)))
        except ValueError:
            raise ValueError(f"{ENV_PREFIX}STATUS_REFRESH_SECONDS must be a number") from None
        return cls(
            router_endpoint=get("ROUTER_ENDPOINT", cls.router_endpoint),
            status_refresh_seconds=refresh,
            event_level=get("EVENT_LEVEL", cls.event_level),
        )

    def to_env(self) -> dict[str, str]:
        return {
            ENV_PREFIX + "ROUTER_ENDPOINT": self.router_endpoint,
            ENV_PREFIX + "STATUS_REFRESH_SECONDS": str(self.status_refresh_seconds),
            ENV_PREFIX + "EVENT_LEVEL": self.event_level,
        }

    def router_for(self, spec: BrainClusterSpec) -> str:
        return self.router_endpoint.format(
            name=spec.name, namespace=spec.namespace, port=spec.router.port
        )


def configure(settings: kopf.OperatorSettings, options: OperatorOptions) -> None:
    """kopf settings: bounded API timeouts (a silently dead watch connection is re-opened),
    standalone (no peering CRD needed), and which events are posted."""
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 60
    settings.networking.connect_timeout = 10
    settings.peering.standalone = True
    settings.posting.level = logging.getLevelName(options.event_level.upper())
    settings.persistence.finalizer = f"{render.GROUP}/operator"
    # kopf's default also keeps handler progress in .status.kopf: leave .status to us.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=render.GROUP
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=render.GROUP, key="last-handled-configuration"
    )


# --------------------------------------------------------------------------------------------
# Plain functions the handlers delegate to


def report_invalid(kube: Kube, body: Mapping[str, Any], error: SpecError) -> None:
    """Phase Failed with the errors in status, and a Warning event naming the fields."""
    meta = body["metadata"]
    status = policy.failed_status(
        error, int(meta.get("generation") or 1), now=time.time(), previous=body.get("status")
    )
    kube.patch_status(meta["namespace"], meta["name"], status)
    post_event(body, "Warning", "InvalidSpec", status["message"])


def apply_children(kube: Kube, body: Mapping[str, Any], logger: logging.Logger) -> None:
    """Reconcile once; an invalid spec or a blocked PFC change is reported, not retried."""
    try:
        result = reconcile.reconcile(kube, body)
    except SpecError as error:
        report_invalid(kube, body, error)
        raise kopf.PermanentError(f"invalid spec: {'; '.join(map(str, error.errors))}") from None
    changed = [f"{a.kind}/{a.name}={a.action}" for a in result.objects if a.action != "unchanged"]
    logger.info("event=reconciled changed=%s", ",".join(changed) or "none")
    if result.pfc_pinned:
        post_event(
            body,
            "Warning",
            "PFCScalingRejected",
            reconcile.pinned_message(result.requested, result.applied),
        )


# --------------------------------------------------------------------------------------------
# Handlers


class StopWhenEither:
    """A daemon's stop flag that is also raised when the whole operator exits.

    kopf stops the daemons before it stops watching; an event that arrives in between can
    spawn the daemon again, and that instance would never be told to stop (the operator
    would hang on exit). The ``exiting`` event, set by the cleanup handler, covers it.
    """

    def __init__(self, stopped: kopf.DaemonStopped, exiting: threading.Event) -> None:
        self.stopped = stopped
        self.exiting = exiting

    def __bool__(self) -> bool:
        return bool(self.stopped) or self.exiting.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self:
            left = 0.25 if deadline is None else min(0.25, deadline - time.monotonic())
            if left <= 0:
                break
            self.stopped.wait(left)
        return bool(self)


@kopf.on.startup()
def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    options = memo.get("options") or OperatorOptions.from_env()
    configure(settings, options)
    memo["options"] = options
    memo["exiting"] = threading.Event()  # shared: resource memos are shallow copies
    try:
        memo["kube"] = Kube(load_client())
    except NoCredentials as exc:
        raise kopf.PermanentError(str(exc)) from None


@kopf.on.cleanup()
def cleanup(memo: kopf.Memo, **_: Any) -> None:
    memo["exiting"].set()
    kube = memo.get("kube")
    if kube is not None:
        kube.api.close()


@kopf.on.create(*RESOURCE, backoff=5)
def on_create(body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
    apply_children(memo["kube"], body, logger)


@kopf.on.resume(*RESOURCE, backoff=5)
def on_resume(body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
    apply_children(memo["kube"], body, logger)


@kopf.on.update(*RESOURCE, field="spec", backoff=5)
def on_update(body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
    apply_children(memo["kube"], body, logger)


# A sync daemon runs in a thread that cannot be cancelled: give it time to see ``stopped``
# (it checks every heartbeat interval) before kopf gives up on it. Without the backoff kopf
# cancels at once and may respawn the still-running daemon during shutdown.
@kopf.daemon(*RESOURCE, cancellation_backoff=15, cancellation_timeout=5)
def health(stopped: kopf.DaemonStopped, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    options: OperatorOptions = memo["options"]
    watchdog.supervise(
        memo["kube"],
        body,
        StopWhenEither(stopped, memo["exiting"]),
        connect_for=options.router_for,
        post=lambda kind, reason, message: post_event(body, kind, reason, message),
        refresh_seconds=options.status_refresh_seconds,
    )
