"""A KMock Kubernetes emulator served from a background thread, and a small client for it.

The emulator runs in its own event loop thread so that tests stay synchronous (``wait_until``
with real processes) while kopf runs in the KopfRunner's thread. Tests talk to it over HTTP,
like any API client would; reads of its internal records (request log, object history) go
through the emulator's own loop to stay consistent.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import kmock
from kmock import KubernetesEmulator, ResourceInfo, Server

from brain_operator import render

T = TypeVar("T")

# Every resource the operator and the tests touch: the emulator lists only declared ones.
# kopf waits for namespaces and CRDs to be discoverable (its "backbone") before watching.
RESOURCES = {
    "v1/namespaces": ResourceInfo(kind="Namespace", namespaced=False, singular="namespace"),
    "apiextensions.k8s.io/v1/customresourcedefinitions": ResourceInfo(
        kind="CustomResourceDefinition", namespaced=False, singular="customresourcedefinition"
    ),
    f"{render.GROUP}/{render.VERSION}/{render.PLURAL}": ResourceInfo(
        kind=render.KIND, namespaced=True, singular="braincluster", subresources={"status"},
        verbs={"get", "list", "watch", "create", "patch", "update", "delete"},
    ),
    "v1/pods": ResourceInfo(kind="Pod", namespaced=True, singular="pod"),
    "v1/services": ResourceInfo(kind="Service", namespaced=True, singular="service"),
    "v1/events": ResourceInfo(kind="Event", namespaced=True, singular="event"),
    "apps/v1/deployments": ResourceInfo(kind="Deployment", namespaced=True, singular="deployment"),
    "apps/v1/statefulsets": ResourceInfo(
        kind="StatefulSet", namespaced=True, singular="statefulset"
    ),
    "policy/v1/poddisruptionbudgets": ResourceInfo(
        kind="PodDisruptionBudget", namespaced=True, singular="poddisruptionbudget"
    ),
}

PATHS = {
    "BrainCluster": f"/apis/{render.GROUP}/{render.VERSION}/namespaces/{{ns}}/{render.PLURAL}",
    "Pod": "/api/v1/namespaces/{ns}/pods",
    "Service": "/api/v1/namespaces/{ns}/services",
    "Event": "/api/v1/namespaces/{ns}/events",
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
    "StatefulSet": "/apis/apps/v1/namespaces/{ns}/statefulsets",
    "PodDisruptionBudget": "/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets",
}


def _merged(base: Any, patch: Any) -> Any:
    """RFC 7386 merge patch, to tell whether a patch changes ``spec``."""
    if not isinstance(patch, Mapping):
        return patch
    out = dict(base) if isinstance(base, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merged(out.get(key), value)
    return out


class StampingEmulator(KubernetesEmulator):
    """The emulator plus what an API server stamps on objects: uid, resourceVersion,
    generation (bumped when ``spec`` changes) and creationTimestamp (DESIGN §7)."""

    _versions = itertools.count(1)

    async def _handle(self, request: Any) -> Any:
        data = request.data
        if request.resource is not None and isinstance(data, dict):
            if request.action == kmock.action.CREATE:
                self._stamp_new(data, request.namespace)
            elif request.action == kmock.action.UPDATE and request.name is not None:
                self._stamp_change(request, data)
        return await super()._handle(request)

    def _stamp_new(self, data: dict[str, Any], namespace: str | None) -> None:
        meta = data.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):  # e.g. kopf's Events
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:8]
        if namespace and not meta.get("namespace"):
            meta["namespace"] = namespace
        meta["uid"] = str(uuid.uuid4())
        meta["resourceVersion"] = str(next(self._versions))
        meta["generation"] = 1
        meta.setdefault("creationTimestamp", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))

    def _stamp_change(self, request: Any, data: dict[str, Any]) -> None:
        meta = data.setdefault("metadata", {})
        meta["resourceVersion"] = str(next(self._versions))
        key = (request.resource, request.namespace, request.name)
        if request.subresource is not None or "spec" not in data or key not in self.objects:
            return
        current = self.objects[key]
        if current.deleted:
            return
        before = current.raw
        if _merged(before.get("spec"), data["spec"]) != before.get("spec"):
            meta["generation"] = int(before.get("metadata", {}).get("generation") or 1) + 1


class ApiError(RuntimeError):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status


class EmulatedApi:
    """The emulator on 127.0.0.1 in a background thread, with an HTTP client for tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.emulator: StampingEmulator | None = None
        self.url = ""
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="kmock", daemon=True)

    # ---------------------------------------------------------------- lifecycle

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
        except BaseException as exc:  # noqa: BLE001 (reported to the test thread)
            self._error = exc
            self._ready.set()
        finally:
            self.loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with StampingEmulator() as emulator, Server(emulator) as server:
            for key, info in RESOURCES.items():
                emulator.resources[key] = info
            self.emulator = emulator
            self.url = str(server.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()

    def start(self) -> EmulatedApi:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None or not self.url:
            raise RuntimeError(f"the KMock emulator did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=15)

    def write_kubeconfig(self, path: Path) -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "kmock", "cluster": {"server": self.url}}],
            "users": [{"name": "kmock", "user": {"token": "kmock-token"}}],
            "contexts": [
                {"name": "kmock", "context": {"cluster": "kmock", "user": "kmock"}}
            ],
            "current-context": "kmock",
        }
        path.write_text(json.dumps(config))
        return path

    def in_loop(self, fn: Callable[[StampingEmulator], T]) -> T:
        """Run ``fn(emulator)`` on the emulator's loop (its records are not thread-safe)."""
        assert self.emulator is not None
        emulator = self.emulator

        async def call() -> T:
            return fn(emulator)

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(timeout=10)

    def requests(self, method: str, path_part: str) -> int:
        """How many requests with this HTTP method had ``path_part`` in their path."""
        return self.in_loop(
            lambda e: sum(
                1 for r in e if r.method.value == method.upper() and path_part in r.url.path
            )
        )

    # ---------------------------------------------------------------- HTTP client

    def _call(self, method: str, path: str, body: Any = None, ctype: str = "") -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = ctype or "application/json"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 (local)
                payload = resp.read()
        except urllib.error.HTTPError as exc:
            raise ApiError(exc.code, exc.read().decode(errors="replace")) from None
        return json.loads(payload) if payload else None

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        ns = obj["metadata"].get("namespace", "default")
        body = {**obj, "metadata": {**obj["metadata"], "namespace": ns}}
        return self._call("POST", PATHS[obj["kind"]].format(ns=ns), body)

    def get(self, kind: str, ns: str, name: str) -> dict[str, Any] | None:
        try:
            return self._call("GET", f"{PATHS[kind].format(ns=ns)}/{name}")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, kind: str, ns: str) -> list[dict[str, Any]]:
        return self._call("GET", PATHS[kind].format(ns=ns)).get("items") or []

    def patch(self, kind: str, ns: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        path = f"{PATHS[kind].format(ns=ns)}/{name}"
        return self._call("PATCH", path, dict(body), "application/merge-patch+json")

    def delete(self, kind: str, ns: str, name: str) -> None:
        self._call("DELETE", f"{PATHS[kind].format(ns=ns)}/{name}")

    def events(self, ns: str, reason: str | None = None) -> list[dict[str, Any]]:
        found = self.list("Event", ns)
        return [e for e in found if reason is None or e.get("reason") == reason]
