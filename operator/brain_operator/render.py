"""Pure manifest builders: a validated BrainCluster spec in, the Kubernetes objects out.

The operator applies these objects and ``brainctl render`` prints them, so both show exactly
the same thing. Nothing here does I/O; every function returns plain dicts ready for the API.

What a cluster ``<name>`` becomes (DESIGN §1):

* ``<name>-router``: a zenohd Deployment and Service (Zenoh on the spec's port, REST on 8000);
* ``<name>-pfc``: a StatefulSet of Raft members, its headless Service (which publishes
  not-ready pods, because Raft peers must reach each other before any of them is ready) and a
  PodDisruptionBudget that lets at most one member go voluntarily;
* ``<name>-vision``: a StatefulSet of Vision nodes and its headless Service.

Node pods are configured only through ``BRAIN_*`` environment variables, which the node's
flags read (``evospikenet.nodes.config``). Each node serves ``/healthz``, ``/readyz`` and
``/metrics`` from one HTTP server, so the pod has one container port, named ``http``: the
probes use it, and the pod annotations point Prometheus at ``/metrics`` on it (two port names
for one container port would be a duplicate-port warning in Kubernetes).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from .spec import BrainClusterSpec

GROUP = "brain.evospikenet.org"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "BrainCluster"
PLURAL = "brainclusters"

PART_OF = "braincluster"
MANAGED_BY = "brain-operator"
APP_NAMES = {"router": "zenohd", "pfc": "evospikenet", "vision": "evospikenet"}
NODE_ROLES = ("pfc", "vision")

HTTP_PORT = 8080
ROUTER_REST_PORT = 8000
JOURNAL_VOLUME = "journal"
JOURNAL_MOUNT = "/var/lib/brain"
RAFT_DATA_DIR = f"{JOURNAL_MOUNT}/raft"
RUN_AS_USER = 10001
NODE_COMMAND = ["python", "-m", "evospikenet", "node"]

Manifest = dict[str, Any]

# --------------------------------------------------------------------------------------------
# Names and labels


def component_name(spec: BrainClusterSpec, component: str) -> str:
    """``demo-router``, ``demo-pfc``, ``demo-vision``: each component's objects share it."""
    return f"{spec.name}-{component}"


def router_endpoint(spec: BrainClusterSpec, namespace: str | None = None) -> str:
    """The Zenoh endpoint pods connect to: the router Service's cluster DNS name."""
    ns = namespace or spec.namespace
    return f"tcp/{component_name(spec, 'router')}.{ns}.svc:{spec.router.port}"


def raft_address_template(spec: BrainClusterSpec) -> str:
    """Each PFC member's Raft address through the headless Service's per-pod DNS name.

    The placeholders stay in: the node fills them in for every peer (nodes/config.py).
    """
    return "{cluster}-pfc-{ordinal}.{cluster}-pfc.{namespace}.svc:" + str(spec.pfc.raft_port)


def selector_labels(spec: BrainClusterSpec, component: str) -> dict[str, str]:
    """The labels a component's selector matches. StatefulSet selectors are immutable, so
    these must never change between operator versions."""
    return {
        "app.kubernetes.io/name": APP_NAMES[component],
        "app.kubernetes.io/instance": spec.name,
        "app.kubernetes.io/component": component,
    }


def labels(spec: BrainClusterSpec, component: str) -> dict[str, str]:
    """The recommended ``app.kubernetes.io`` labels of every object and pod."""
    return {
        **selector_labels(spec, component),
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def cluster_selector(spec: BrainClusterSpec) -> dict[str, str]:
    """Labels shared by every pod of one cluster (router, PFC and Vision)."""
    return {"app.kubernetes.io/instance": spec.name, "app.kubernetes.io/part-of": PART_OF}


def selector_string(selector: Mapping[str, str]) -> str:
    """A label selector in the ``k=v,k=v`` form the API's ``labelSelector`` takes."""
    return ",".join(f"{key}={value}" for key, value in selector.items())


def owner_reference(owner: Mapping[str, Any]) -> dict[str, Any]:
    """A controller owner reference to ``owner`` (a BrainCluster body), so Kubernetes
    garbage-collects the children with it."""
    meta = owner["metadata"]
    return {
        "apiVersion": owner.get("apiVersion", API_VERSION),
        "kind": owner.get("kind", KIND),
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(
    spec: BrainClusterSpec,
    component: str,
    namespace: str,
    owner: Mapping[str, Any] | None,
    *,
    name: str | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name or component_name(spec, component),
        "namespace": namespace,
        "labels": labels(spec, component),
    }
    if owner is not None:
        meta["ownerReferences"] = [owner_reference(owner)]
    return meta


# --------------------------------------------------------------------------------------------
# Pod parts


def _number(value: float | int) -> str:
    return str(value)


def _env(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"name": key, "value": str(value)} for key, value in values.items()]


def _downward_env() -> list[dict[str, Any]]:
    """POD_NAME gives the node its id (``demo-pfc-2`` → ``pfc-2``), POD_NAMESPACE fills the
    Raft address template."""
    return [
        {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}
        for name, path in (("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace"))
    ]


def node_env(spec: BrainClusterSpec, role: str, namespace: str) -> list[dict[str, Any]]:
    """The ``BRAIN_*`` variables that configure one role's node process."""
    common = {
        "BRAIN_ROLE": role,
        "BRAIN_CLUSTER": spec.name,
        "BRAIN_CONNECT": router_endpoint(spec, namespace),
        "BRAIN_HTTP_PORT": HTTP_PORT,
        "BRAIN_HEARTBEAT_INTERVAL": _number(spec.heartbeat.interval_seconds),
        "BRAIN_HEARTBEAT_TIMEOUT": _number(spec.heartbeat.timeout_seconds),
        "BRAIN_SEED": spec.seed,
        "BRAIN_VISION_SIZE": spec.vision.model.size,  # the PFC's input width too
        # A read-only root filesystem: libraries that cache under $HOME write to /tmp.
        "HOME": "/tmp",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    if role == "vision":
        specific: dict[str, Any] = {"BRAIN_TIME_STEPS": spec.vision.model.time_steps}
    else:
        pfc = spec.pfc
        specific = {
            "BRAIN_TIME_STEPS": pfc.model.time_steps,
            "BRAIN_PEERS": ",".join(spec.pfc_node_ids()),
            "BRAIN_RAFT_ADDRESS_TEMPLATE": raft_address_template(spec),
            "BRAIN_DATA_DIR": RAFT_DATA_DIR,
            "BRAIN_DECISION_RATE": _number(pfc.decision_rate_hz),
            "BRAIN_RAFT_HEARTBEAT_INTERVAL": _number(pfc.raft.heartbeat_interval_seconds),
            "BRAIN_ELECTION_TIMEOUT": _number(pfc.raft.election_timeout_seconds),
            "BRAIN_PFC_SIZE": pfc.model.size,
            "BRAIN_NUM_MODULES": pfc.model.num_modules,
            "BRAIN_N_HEADS": pfc.model.n_heads,
        }
    return _downward_env() + _env({**common, **specific})


def _non_root() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    """Restricted Pod Security Standard: non-root, no privilege escalation, no capabilities."""
    return {
        **_non_root(),
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def pod_security_context() -> dict[str, Any]:
    """Non-root for every container; fsGroup makes the journal volume writable by it."""
    return {**_non_root(), "runAsGroup": RUN_AS_USER, "fsGroup": RUN_AS_USER}


def _http_probe(path: str, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def _tmp_volume() -> dict[str, Any]:
    return {"name": "tmp", "emptyDir": {}}


def _node_container(spec: BrainClusterSpec, role: str, namespace: str) -> dict[str, Any]:
    ports = [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}]
    mounts = [{"name": "tmp", "mountPath": "/tmp"}]
    if role == "pfc":
        ports.append({"name": "raft", "containerPort": spec.pfc.raft_port, "protocol": "TCP"})
        mounts.append({"name": JOURNAL_VOLUME, "mountPath": JOURNAL_MOUNT})
    resources = spec.pfc.resources if role == "pfc" else spec.vision.resources
    # Models load before /healthz answers: the startup probe gives them the startup grace.
    grace_periods = max(3, int(spec.heartbeat.startup_grace_seconds // 5) + 1)
    return {
        "name": role,
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": list(NODE_COMMAND),
        "env": node_env(spec, role, namespace),
        "ports": ports,
        "startupProbe": _http_probe("/healthz", period=5, failures=grace_periods),
        "livenessProbe": _http_probe("/healthz", period=10, failures=3),
        "readinessProbe": _http_probe("/readyz", period=5, failures=2),
        "resources": copy.deepcopy(resources),
        "securityContext": container_security_context(),
        "volumeMounts": mounts,
    }


def _node_pod_template(spec: BrainClusterSpec, role: str, namespace: str) -> dict[str, Any]:
    volumes = [_tmp_volume()]
    if role == "pfc" and spec.pfc.storage.ephemeral:
        volumes.append({"name": JOURNAL_VOLUME, "emptyDir": {}})
    return {
        "metadata": {
            "labels": labels(spec, role),
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(HTTP_PORT),
                "prometheus.io/path": "/metrics",
            },
        },
        "spec": {
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": pod_security_context(),
            "terminationGracePeriodSeconds": 10,
            "containers": [_node_container(spec, role, namespace)],
            "volumes": volumes,
        },
    }


def _journal_claim(spec: BrainClusterSpec) -> dict[str, Any]:
    storage = spec.pfc.storage
    claim_spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": storage.size}},
    }
    if storage.storage_class_name:
        claim_spec["storageClassName"] = storage.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": JOURNAL_VOLUME, "labels": labels(spec, "pfc")},
        "spec": claim_spec,
    }


# --------------------------------------------------------------------------------------------
# Objects


def node_statefulset(
    spec: BrainClusterSpec, role: str, namespace: str, owner: Mapping[str, Any] | None = None
) -> Manifest:
    """One role's StatefulSet. Pods start in parallel (Raft needs its peers up together);
    updates still roll one pod at a time, so the PFC group never restarts all at once."""
    replicas = spec.pfc.replicas if role == "pfc" else spec.vision.replicas
    body: dict[str, Any] = {
        "replicas": replicas,
        "serviceName": component_name(spec, role),
        "podManagementPolicy": "Parallel",
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
        "selector": {"matchLabels": selector_labels(spec, role)},
        "template": _node_pod_template(spec, role, namespace),
    }
    if role == "pfc" and not spec.pfc.storage.ephemeral:
        body["volumeClaimTemplates"] = [_journal_claim(spec)]
        # Journals hold the committed decisions: keep them when the cluster goes away.
        body["persistentVolumeClaimRetentionPolicy"] = {
            "whenDeleted": "Retain",
            "whenScaled": "Retain",
        }
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _metadata(spec, role, namespace, owner),
        "spec": body,
    }


def _service_port(name: str, port: int) -> dict[str, Any]:
    return {"name": name, "port": port, "targetPort": name, "protocol": "TCP"}


def node_service(
    spec: BrainClusterSpec, role: str, namespace: str, owner: Mapping[str, Any] | None = None
) -> Manifest:
    """The headless Service that gives each pod a stable DNS name (``demo-pfc-0.demo-pfc``);
    not-ready pods are published so Raft peers find each other while starting."""
    ports = [_service_port("http", HTTP_PORT)]
    if role == "pfc":
        ports.insert(0, _service_port("raft", spec.pfc.raft_port))
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(spec, role, namespace, owner),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": selector_labels(spec, role),
            "ports": ports,
        },
    }


def pfc_disruption_budget(
    spec: BrainClusterSpec, namespace: str, owner: Mapping[str, Any] | None = None
) -> Manifest:
    """At most one PFC member down for voluntary disruptions (drains), keeping a majority
    for any group of three or more."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(spec, "pfc", namespace, owner),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector_labels(spec, "pfc")},
        },
    }


def router_args(spec: BrainClusterSpec) -> list[str]:
    """zenohd flags: listen on every address, no multicast scouting (nodes connect to the
    Service explicitly), REST API for diagnostics."""
    return [
        f"--listen=tcp/[::]:{spec.router.port}",
        "--no-multicast-scouting",
        f"--rest-http-port={ROUTER_REST_PORT}",
    ]


def _tcp_probe(*, period: int, failures: int, delay: int = 0) -> dict[str, Any]:
    return {
        "tcpSocket": {"port": "zenoh"},
        "initialDelaySeconds": delay,
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def router_deployment(
    spec: BrainClusterSpec, namespace: str, owner: Mapping[str, Any] | None = None
) -> Manifest:
    """The zenohd Deployment. One replica: nodes reconnect within about a second after a
    router restart (DESIGN §4), and two routers would need router-to-router links."""
    container = {
        "name": "zenohd",
        "image": spec.router.image,
        "imagePullPolicy": "IfNotPresent",  # spec.imagePullPolicy is the node image's
        "args": router_args(spec),
        "ports": [
            {"name": "zenoh", "containerPort": spec.router.port, "protocol": "TCP"},
            {"name": "rest", "containerPort": ROUTER_REST_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": _tcp_probe(period=5, failures=2),
        "livenessProbe": _tcp_probe(period=10, failures=3, delay=5),
        "resources": copy.deepcopy(spec.router.resources),
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(spec, "router", namespace, owner),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector_labels(spec, "router")},
            "strategy": {"type": "Recreate"},
            "template": {
                "metadata": {"labels": labels(spec, "router")},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_security_context(),
                    "containers": [container],
                    "volumes": [_tmp_volume()],
                },
            },
        },
    }


def router_service(
    spec: BrainClusterSpec, namespace: str, owner: Mapping[str, Any] | None = None
) -> Manifest:
    """The Service every node connects to (``tcp/<name>-router.<ns>.svc:<port>``)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(spec, "router", namespace, owner),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(spec, "router"),
            "ports": [
                _service_port("zenoh", spec.router.port),
                _service_port("rest", ROUTER_REST_PORT),
            ],
        },
    }


def render_all(
    spec: BrainClusterSpec,
    namespace: str | None = None,
    owner: Mapping[str, Any] | None = None,
) -> list[Manifest]:
    """Every child object of the cluster, in apply order (router first: nodes connect to it).

    ``namespace`` defaults to the spec's; ``owner`` (the BrainCluster body, with a uid) adds
    controller owner references.
    """
    ns = namespace or spec.namespace
    objects = [router_service(spec, ns, owner), router_deployment(spec, ns, owner)]
    for role in NODE_ROLES:
        objects.append(node_service(spec, role, ns, owner))
        if role == "pfc":
            objects.append(pfc_disruption_budget(spec, ns, owner))
        objects.append(node_statefulset(spec, role, ns, owner))
    return objects


def to_yaml(objects: Iterable[Mapping[str, Any]]) -> str:
    """Manifests as one multi-document YAML stream (``kubectl apply -f -`` reads it)."""
    return yaml.safe_dump_all(
        [dict(obj) for obj in objects], sort_keys=False, explicit_start=True
    )


def render_yaml(spec: BrainClusterSpec, namespace: str | None = None) -> str:
    """``brainctl render``: every child object of the cluster as multi-document YAML."""
    return to_yaml(render_all(spec, namespace))
