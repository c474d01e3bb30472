"""The Kubernetes API calls the operator makes, as plain JSON dicts in and out.

Requests go through the ``kubernetes`` client's ``ApiClient`` (its configuration, auth and
connection pool) but skip its typed models: the manifests are rendered as dicts, and a
dict → model → dict round trip would be one more place for a field to go missing. Every
patch names its content type, because the generated client would otherwise pick JSON Patch
for a mapping body.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import kopf
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from .render import GROUP, PLURAL, VERSION

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"

# Collection paths of the kinds the operator touches.
COLLECTIONS = {
    "Pod": "/api/v1/namespaces/{namespace}/pods",
    "Service": "/api/v1/namespaces/{namespace}/services",
    "Deployment": "/apis/apps/v1/namespaces/{namespace}/deployments",
    "StatefulSet": "/apis/apps/v1/namespaces/{namespace}/statefulsets",
    "PodDisruptionBudget": "/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets",
    "BrainCluster": f"/apis/{GROUP}/{VERSION}/namespaces/{{namespace}}/{PLURAL}",
}

# Fields the API server refuses to change after creation: left out of patches.
IMMUTABLE_SPEC_FIELDS = {
    "StatefulSet": ("selector", "serviceName", "podManagementPolicy", "volumeClaimTemplates"),
    "Deployment": ("selector",),
    "Service": ("clusterIP", "clusterIPs"),
}


class NoCredentials(RuntimeError):
    """Neither in-cluster credentials nor a usable kubeconfig: the operator cannot start."""


def load_client() -> client.ApiClient:
    """An API client for the operator's own cluster: in-cluster credentials when running in
    a pod, else the kubeconfig (``$KUBECONFIG``), which is also how the tests reach KMock."""
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except ConfigException:
        try:
            config.load_kube_config(client_configuration=configuration)
        except (ConfigException, OSError) as exc:
            raise NoCredentials(
                "no Kubernetes credentials: not running in a pod, and no usable kubeconfig "
                f"($KUBECONFIG or ~/.kube/config): {exc}"
            ) from None
    return client.ApiClient(configuration)


def is_subset(desired: Any, live: Any) -> bool:
    """Whether ``live`` already holds every value of ``desired``.

    The API server adds defaults and status, so equality never holds; a desired value that
    is already there needs no patch. Lists must match item by item.
    """
    if isinstance(desired, Mapping):
        return isinstance(live, Mapping) and all(
            key in live and is_subset(value, live[key]) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(desired) == len(live)
            and all(is_subset(d, item) for d, item in zip(desired, live, strict=True))
        )
    return desired == live or (
        isinstance(desired, (int, float)) and not isinstance(desired, bool) and str(desired) == live
    )


def patch_body(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest minus what the API server would refuse to change."""
    body = {k: v for k, v in manifest.items() if k not in ("apiVersion", "kind")}
    frozen = IMMUTABLE_SPEC_FIELDS.get(manifest["kind"], ())
    if frozen and "spec" in body:
        body["spec"] = {k: v for k, v in body["spec"].items() if k not in frozen}
    return body


def matches(labels: Mapping[str, str] | None, selector: Mapping[str, str]) -> bool:
    """Equality-based label selection (the API filters too; KMock does not)."""
    labels = labels or {}
    return all(labels.get(key) == value for key, value in selector.items())


@dataclass(frozen=True)
class Applied:
    """What :meth:`Kube.apply` did to one object: created, patched or unchanged."""

    kind: str
    name: str
    action: str
    live: dict[str, Any]


class Kube:
    """The operator's API calls. Thread-safe: the client's connection pool is."""

    def __init__(self, api: client.ApiClient, *, timeout: float = 30.0) -> None:
        self.api = api
        self.timeout = timeout

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str | None = None,
        query: Iterable[tuple[str, str]] = (),
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        request = self.api.param_serialize(
            method=method,
            resource_path=path,
            query_params=list(query),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(*request, _request_timeout=self.timeout)
        response.read()
        if not 200 <= response.status <= 299:
            raise ApiException.from_response(http_resp=response, body=None, data=None)
        return json.loads(response.data) if response.data else {}

    @staticmethod
    def _path(kind: str, namespace: str, name: str | None = None, sub: str | None = None) -> str:
        path = COLLECTIONS[kind].format(namespace=namespace)
        for part in (name, sub):
            if part:
                path += f"/{part}"
        return path

    # ---------------------------------------------------------------- generic object calls

    def read(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._call("GET", self._path(kind, namespace, name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def create(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        namespace = manifest["metadata"]["namespace"]
        return self._call("POST", self._path(manifest["kind"], namespace), body=dict(manifest))

    def patch(
        self, kind: str, namespace: str, name: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """A strategic merge patch (lists of containers, env, ports merge by name)."""
        path = self._path(kind, namespace, name)
        return self._call("PATCH", path, body=dict(body), content_type=STRATEGIC_PATCH)

    def apply(self, manifest: Mapping[str, Any]) -> Applied:
        """Create the object, or patch it where it differs from ``manifest`` (idempotent)."""
        kind, meta = manifest["kind"], manifest["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        live = self.read(kind, namespace, name)
        if live is None:
            try:
                return Applied(kind, name, "created", self.create(manifest))
            except ApiException as exc:
                if exc.status != 409:  # 409: created meanwhile; patch it below
                    raise
                live = self.read(kind, namespace, name) or {}
        body = patch_body(manifest)
        if is_subset(body, live):
            return Applied(kind, name, "unchanged", live)
        return Applied(kind, name, "patched", self.patch(kind, namespace, name, body))

    # ---------------------------------------------------------------- pods

    def list_pods(self, namespace: str, selector: Mapping[str, str]) -> list[dict[str, Any]]:
        """Pods matching ``selector``, filtered here as well as by the server."""
        query = [("labelSelector", ",".join(f"{k}={v}" for k, v in selector.items()))]
        items = self._call("GET", self._path("Pod", namespace), query=query).get("items") or []
        return [p for p in items if matches(p.get("metadata", {}).get("labels"), selector)]

    def delete_pod(self, namespace: str, name: str, uid: str | None = None) -> bool:
        """Delete one pod (only the incarnation ``uid`` when given); False if already gone."""
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self._call("DELETE", self._path("Pod", namespace, name), body=body)
        except ApiException as exc:
            if exc.status in (404, 409):  # gone, or already replaced by a new incarnation
                return False
            raise
        return True

    # ---------------------------------------------------------------- the BrainCluster

    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> dict[str, Any]:
        """Merge-patch ``.status`` (custom resources take no strategic merge patches)."""
        path = self._path("BrainCluster", namespace, name, "status")
        return self._call("PATCH", path, body={"status": dict(status)}, content_type=MERGE_PATCH)


def post_event(body: Mapping[str, Any], kind: str, reason: str, message: str) -> None:
    """A Kubernetes Event on the BrainCluster (``kubectl describe`` shows it), via kopf's
    poster, which is safe to call from handler and daemon threads."""
    kopf.event(dict(body), type=kind, reason=reason, message=message)
