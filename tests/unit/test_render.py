"""brain_operator.render: every manifest is valid Kubernetes and carries the spec."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from brain_operator import render, spec

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
K8S_VERSION = kubernetes_validate.latest_version()
OWNER = {
    "apiVersion": "brain.evospikenet.org/v1alpha1",
    "kind": "BrainCluster",
    "metadata": {"name": "demo", "namespace": "brains", "uid": "8f2d7c1e-uid"},
}


def make(spec_body: dict[str, Any] | None = None, name: str = "demo") -> spec.BrainClusterSpec:
    return spec.validate(
        {
            "apiVersion": "brain.evospikenet.org/v1alpha1",
            "kind": "BrainCluster",
            "metadata": {"name": name, "namespace": "brains"},
            "spec": spec_body or {},
        }
    )


VARIANTS = {
    "defaults": {},
    "ephemeral": {"pfc": {"replicas": 1, "storage": {"ephemeral": True}}},
    "storage-class": {
        "pfc": {"replicas": 5, "storage": {"size": "5Gi", "storageClassName": "ssd"}}
    },
    "no-vision": {"vision": {"replicas": 0}},
    "limits": {
        "imagePullPolicy": "Always",
        "router": {"port": 17447, "resources": {"limits": {"cpu": 1, "memory": "128Mi"}}},
        "vision": {"replicas": 4, "resources": {"limits": {"cpu": "500m"}}},
    },
}


def cases() -> list[tuple[str, spec.BrainClusterSpec]]:
    found = [(path.name, spec.load_file(path)) for path in EXAMPLES]
    return found + [(name, make(body)) for name, body in VARIANTS.items()]


def by_kind(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_the_examples_are_covered():
    assert {p.name for p in EXAMPLES} >= {"braincluster.yaml", "minimal.yaml"}


@pytest.mark.parametrize("owner", [None, OWNER], ids=["no-owner", "owner"])
@pytest.mark.parametrize(("label", "cluster"), cases(), ids=[c[0] for c in cases()])
def test_every_manifest_validates_strictly(label, cluster, owner):
    objects = render.render_all(cluster, "brains", owner)
    assert len(objects) == 7
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_strict_validation_catches_a_typo():
    """Guard: the validator really is strict, so the test above means something."""
    service = render.router_service(make(), "brains")
    service["spec"]["clusterIp"] = "None"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, K8S_VERSION, strict=True)


def test_children_names_kinds_and_owner_references():
    objects = by_kind(render.render_all(make(), "brains", OWNER))
    assert set(objects) == {
        ("Service", "demo-router"),
        ("Deployment", "demo-router"),
        ("Service", "demo-pfc"),
        ("PodDisruptionBudget", "demo-pfc"),
        ("StatefulSet", "demo-pfc"),
        ("Service", "demo-vision"),
        ("StatefulSet", "demo-vision"),
    }
    for obj in objects.values():
        assert obj["metadata"]["namespace"] == "brains"
        (ref,) = obj["metadata"]["ownerReferences"]
        assert ref == {
            "apiVersion": "brain.evospikenet.org/v1alpha1",
            "kind": "BrainCluster",
            "name": "demo",
            "uid": "8f2d7c1e-uid",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    assert all("ownerReferences" not in o["metadata"] for o in render.render_all(make()))


def test_labels_and_selectors():
    objects = by_kind(render.render_all(make(), "brains"))
    for (kind, name), obj in objects.items():
        component = name.removeprefix("demo-")
        assert obj["metadata"]["labels"] == {
            "app.kubernetes.io/name": "zenohd" if component == "router" else "evospikenet",
            "app.kubernetes.io/instance": "demo",
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/part-of": "braincluster",
            "app.kubernetes.io/managed-by": "brain-operator",
        }
        if kind in ("StatefulSet", "Deployment"):
            selector = obj["spec"]["selector"]["matchLabels"]
            pod_labels = obj["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= pod_labels.items()
            assert pod_labels.items() >= render.cluster_selector(make()).items()
    assert render.selector_string({"a": "1", "b": "x"}) == "a=1,b=x"


def test_router_deployment_and_service():
    cluster = make({"router": {"image": "eclipse/zenoh:9.9", "port": 17447}})
    objects = by_kind(render.render_all(cluster, "brains"))
    deployment = objects["Deployment", "demo-router"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "eclipse/zenoh:9.9"
    assert container["args"] == [
        "--listen=tcp/[::]:17447",
        "--no-multicast-scouting",
        "--rest-http-port=8000",
    ]
    assert container["readinessProbe"]["tcpSocket"] == {"port": "zenoh"}
    assert container["livenessProbe"]["tcpSocket"] == {"port": "zenoh"}
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "zenoh": 17447,
        "rest": 8000,
    }
    assert container["resources"] == {"requests": {"cpu": "100m", "memory": "64Mi"}}
    service = objects["Service", "demo-router"]
    assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [
        ("zenoh", 17447),
        ("rest", 8000),
    ]
    assert render.router_endpoint(cluster, "brains") == "tcp/demo-router.brains.svc:17447"


def test_pfc_statefulset_env_and_journal():
    cluster = spec.load_file(REPO / "examples" / "braincluster.yaml")
    objects = by_kind(render.render_all(cluster, "brains"))
    sts = objects["StatefulSet", "demo-pfc"]
    assert sts["spec"]["replicas"] == 3
    assert sts["spec"]["serviceName"] == "demo-pfc"
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    assert sts["spec"]["updateStrategy"]["type"] == "RollingUpdate"
    pod = sts["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "evospikenet/node:0.1.0"
    assert container["command"] == ["python", "-m", "evospikenet", "node"]
    env = env_of(container)
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["BRAIN_ROLE"] == "pfc"
    assert env["BRAIN_CLUSTER"] == "demo"
    assert env["BRAIN_PEERS"] == "pfc-0,pfc-1,pfc-2"
    assert env["BRAIN_CONNECT"] == "tcp/demo-router.brains.svc:7447"
    assert (
        env["BRAIN_RAFT_ADDRESS_TEMPLATE"]
        == "{cluster}-pfc-{ordinal}.{cluster}-pfc.{namespace}.svc:7100"
    )
    assert env["BRAIN_DATA_DIR"].startswith(render.JOURNAL_MOUNT)
    pfc, heartbeat = cluster.pfc, cluster.heartbeat
    numbers = {
        "BRAIN_DECISION_RATE": pfc.decision_rate_hz,
        "BRAIN_RAFT_HEARTBEAT_INTERVAL": pfc.raft.heartbeat_interval_seconds,
        "BRAIN_ELECTION_TIMEOUT": pfc.raft.election_timeout_seconds,
        "BRAIN_HEARTBEAT_INTERVAL": heartbeat.interval_seconds,
        "BRAIN_HEARTBEAT_TIMEOUT": heartbeat.timeout_seconds,
        "BRAIN_PFC_SIZE": pfc.model.size,
        "BRAIN_NUM_MODULES": pfc.model.num_modules,
        "BRAIN_N_HEADS": pfc.model.n_heads,
        "BRAIN_TIME_STEPS": pfc.model.time_steps,
        "BRAIN_SEED": cluster.seed,
    }
    assert {k: float(env[k]) for k in numbers} == numbers
    assert env["BRAIN_HTTP_PORT"] == "8080"
    assert container["resources"] == {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"memory": "2Gi"},
    }
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "http": 8080,
        "raft": 7100,
    }
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "journal"
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert "storageClassName" not in claim["spec"]
    assert all(v["name"] != "journal" for v in pod["volumes"])
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"tmp": "/tmp", "journal": render.JOURNAL_MOUNT}


def test_ephemeral_storage_uses_an_empty_dir_and_storage_class_is_passed():
    ephemeral = render.node_statefulset(make(VARIANTS["ephemeral"]), "pfc", "brains")
    assert "volumeClaimTemplates" not in ephemeral["spec"]
    volumes = {v["name"]: v for v in ephemeral["spec"]["template"]["spec"]["volumes"]}
    assert volumes["journal"] == {"name": "journal", "emptyDir": {}}
    assert env_of(ephemeral["spec"]["template"]["spec"]["containers"][0])["BRAIN_PEERS"] == "pfc-0"
    classy = render.node_statefulset(make(VARIANTS["storage-class"]), "pfc", "brains")
    (claim,) = classy["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == "ssd"
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert classy["spec"]["replicas"] == 5


def test_pfc_headless_service_and_disruption_budget():
    objects = by_kind(render.render_all(make(), "brains"))
    service = objects["Service", "demo-pfc"]
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"raft": 7100, "http": 8080}
    pdb = objects["PodDisruptionBudget", "demo-pfc"]
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == render.selector_labels(make(), "pfc")


def test_vision_statefulset_and_service():
    cluster = make({"image": "reg/brain:2", "vision": {"replicas": 4, "model": {"timeSteps": 7}}})
    objects = by_kind(render.render_all(cluster, "brains"))
    sts = objects["StatefulSet", "demo-vision"]
    assert sts["spec"]["replicas"] == 4
    assert sts["spec"]["serviceName"] == "demo-vision"
    assert "volumeClaimTemplates" not in sts["spec"]
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "reg/brain:2"
    env = env_of(container)
    assert env["BRAIN_ROLE"] == "vision"
    assert env["BRAIN_TIME_STEPS"] == "7"
    assert env["BRAIN_VISION_SIZE"] == "512"
    assert "BRAIN_PEERS" not in env
    service = objects["Service", "demo-vision"]
    assert service["spec"]["clusterIP"] == "None"
    assert [p["name"] for p in service["spec"]["ports"]] == ["http"]


def test_node_pods_are_locked_down_and_probed():
    for role in render.NODE_ROLES:
        sts = render.node_statefulset(make(), role, "brains")
        pod = sts["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        (container,) = pod["containers"]
        security = container["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] == 10001
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert {"name": "tmp", "emptyDir": {}} in pod["volumes"]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        annotations = sts["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/path"] == "/metrics"
        assert annotations["prometheus.io/port"] == "8080"


def test_render_yaml_is_a_multi_document_stream_of_render_all():
    cluster = make()
    docs = list(yaml.safe_load_all(render.render_yaml(cluster)))
    assert docs == render.render_all(cluster)
    assert [d["kind"] for d in docs][:2] == ["Service", "Deployment"]
