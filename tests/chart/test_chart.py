"""The brain-operator Helm chart with a real helm: lint, render, validate, RBAC, CRD copy."""

from __future__ import annotations

import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from support import REPO

CHART = REPO / "charts" / "brain-operator"
HERE = Path(__file__).parent
NAMESPACED = HERE / "values-namespaced.yaml"
BAD = HERE / "values-bad.yaml"
RELEASE, NAMESPACE = "brain", "brain-system"
K8S_VERSION = kubernetes_validate.latest_version()
ROUTER_TEMPLATE = "tcp/{name}-router.{namespace}.svc.cluster.local:{port}"  # in NAMESPACED
# Not a Kubernetes kind: kubernetes-validate has no schema for the prometheus-operator CRD.
UNVALIDATED_KINDS = {"ServiceMonitor"}

# What the operator does through the API, rule by rule: (apiGroup, resource) -> verbs.
NAMESPACED_RULES = {
    ("brain.evospikenet.org", "brainclusters"): {"get", "list", "watch", "patch"},
    ("brain.evospikenet.org", "brainclusters/status"): {"get", "patch", "update"},
    ("apps", "deployments"): {"get", "list", "watch", "create", "patch", "update", "delete"},
    ("apps", "statefulsets"): {"get", "list", "watch", "create", "patch", "update", "delete"},
    ("", "services"): {"get", "list", "watch", "create", "patch", "update", "delete"},
    ("policy", "poddisruptionbudgets"): {
        "get", "list", "watch", "create", "patch", "update", "delete"},
    ("", "pods"): {"get", "list", "watch", "delete"},
    ("", "persistentvolumeclaims"): {"get", "list", "watch"},
    ("", "events"): {"create", "patch"},
    ("events.k8s.io", "events"): {"create", "patch"},
}
CRD_RULES = {("apiextensions.k8s.io", "customresourcedefinitions"): {"get", "list", "watch"}}
NAMESPACE_RULES = {("", "namespaces"): {"list", "watch"}}


def run_helm(helm: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=120)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def render(helm: Path, *values: Path, sets: tuple[str, ...] = ()) -> list[dict]:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--include-crds"]
    for path in values:
        args += ["-f", str(path)]
    for item in sets:
        args += ["--set", item]
    docs = yaml.safe_load_all(run_helm(helm, *args).stdout)
    return [d for d in docs if d]


def only(objects: list[dict], kind: str) -> dict:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def rules_of(role: dict) -> dict[tuple[str, str], set[str]]:
    """Flatten a Role's rules to (apiGroup, resource) -> verbs, failing on duplicates."""
    out: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                assert (group, resource) not in out, f"{group}/{resource} granted twice"
                out[(group, resource)] = set(rule["verbs"])
    return out


def env_of(container: dict) -> dict[str, object]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


@pytest.fixture(scope="module")
def default_objects(helm):
    return render(helm)


@pytest.fixture(scope="module")
def namespaced_objects(helm):
    return render(helm, NAMESPACED)


@pytest.mark.parametrize("values", [(), (NAMESPACED,)], ids=["default", "namespaced"])
def test_helm_lint_is_clean(helm, values):
    args = ["lint", "--strict", str(CHART)]
    for path in values:
        args += ["-f", str(path)]
    result = run_helm(helm, *args)
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("fixture", ["default_objects", "namespaced_objects"])
def test_every_rendered_object_validates_against_the_kubernetes_schema(fixture, request):
    objects = request.getfixturevalue(fixture)
    validated = 0
    for obj in objects:
        if obj["kind"] in UNVALIDATED_KINDS:
            continue
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        validated += 1
    assert validated >= 5


@pytest.mark.parametrize("fixture", ["default_objects", "namespaced_objects"])
def test_no_rbac_rule_grants_a_wildcard(fixture, request):
    roles = [o for o in request.getfixturevalue(fixture) if o["kind"] in ("Role", "ClusterRole")]
    assert roles
    for role in roles:
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], f"{role['metadata']['name']}: {field} has *"
            assert "nonResourceURLs" not in rule and "resourceNames" not in rule


def test_the_chart_crd_is_the_repository_crd_byte_for_byte():
    chart_crd = CHART / "crds" / "braincluster.yaml"
    source = REPO / "crds" / "braincluster.yaml"
    assert chart_crd.read_bytes() == source.read_bytes(), (
        "charts/brain-operator/crds/braincluster.yaml is stale: run `make chart-crd`")


def test_default_install_watches_every_namespace_with_one_cluster_role(default_objects):
    kinds = sorted(o["kind"] for o in default_objects)
    assert kinds == sorted(["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment",
                            "CustomResourceDefinition"])
    cluster_role = only(default_objects, "ClusterRole")
    assert rules_of(cluster_role) == {**CRD_RULES, **NAMESPACE_RULES, **NAMESPACED_RULES}
    binding = only(default_objects, "ClusterRoleBinding")
    account = only(default_objects, "ServiceAccount")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io",
                                  "kind": "ClusterRole", "name": cluster_role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"],
                                    "namespace": NAMESPACE}]


def test_default_deployment_runs_one_kopf_operator_with_its_liveness_probe(default_objects):
    deployment = only(default_objects, "Deployment")
    spec = deployment["spec"]
    assert deployment["metadata"]["namespace"] == NAMESPACE
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    assert pod["serviceAccountName"] == only(default_objects, "ServiceAccount")["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    (container,) = pod["containers"]
    assert container["image"] == "evospikenet/operator:0.1.0"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["args"] == ["--all-namespaces", "--liveness=http://0.0.0.0:8080/healthz"]
    probe = container["livenessProbe"]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert probe["path"] == "/healthz" and ports[probe["port"]] == 8080
    env = env_of(container)
    assert env["BRAIN_DEFAULT_NODE_IMAGE"] == "evospikenet/node:0.1.0"
    assert env["LOG_LEVEL"] == env["BRAIN_LOG_LEVEL"] == "INFO"
    assert "BRAIN_ROUTER_ENDPOINT_TEMPLATE" not in env and "BRAIN_METRICS_PORT" not in env
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["requests"] == {"cpu": "100m", "memory": "256Mi"}


def test_namespaced_install_grants_roles_only_in_the_watched_namespaces(namespaced_objects):
    roles = {o["metadata"]["namespace"]: o for o in namespaced_objects if o["kind"] == "Role"}
    bindings = {o["metadata"]["namespace"]: o for o in namespaced_objects
                if o["kind"] == "RoleBinding"}
    assert set(roles) == set(bindings) == {"brain-a", "brain-b"}
    for namespace, role in roles.items():
        assert rules_of(role) == NAMESPACED_RULES
        binding = bindings[namespace]
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["roleRef"]["name"] == role["metadata"]["name"]
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "brain-operator-test",
                                        "namespace": NAMESPACE}]
    # Cluster-wide only what kopf must read outside the namespaces: the CRD.
    assert rules_of(only(namespaced_objects, "ClusterRole")) == CRD_RULES


def test_namespaced_deployment_passes_namespaces_image_and_settings(namespaced_objects):
    deployment = only(namespaced_objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "registry.example.test/brain/operator:0.1.0-test"
    assert container["imagePullPolicy"] == "Always"
    assert container["args"] == [
        "--namespace=brain-a", "--namespace=brain-b", "--liveness=http://0.0.0.0:8080/healthz",
        f"--router-endpoint={ROUTER_TEMPLATE}", "--verbose",
    ]
    env = env_of(container)
    assert env["BRAIN_DEFAULT_NODE_IMAGE"] == "registry.example.test/brain/node:0.1.0-test"
    assert env["BRAIN_ROUTER_ENDPOINT_TEMPLATE"] == ROUTER_TEMPLATE
    assert env["BRAIN_METRICS_PORT"] == "9191"
    assert env["LOG_LEVEL"] == "DEBUG" and env["EXTRA_SETTING"] == "on"
    assert pod["serviceAccountName"] == "brain-operator-test"
    assert pod["imagePullSecrets"] == [{"name": "registry-credentials"}]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert deployment["spec"]["template"]["metadata"]["labels"]["team"] == "brain"


def test_service_monitor_scrapes_the_metrics_service_of_the_operator_pod(namespaced_objects):
    monitor = only(namespaced_objects, "ServiceMonitor")
    service = only(namespaced_objects, "Service")
    deployment = only(namespaced_objects, "Deployment")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == NAMESPACE
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus"
    spec = monitor["spec"]
    assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert spec["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "15s",
                                  "scrapeTimeout": "5s"}]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9191,
                                         "targetPort": "metrics", "protocol": "TCP"}]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert {"name": "metrics", "containerPort": 9191, "protocol": "TCP"} in container["ports"]


def test_a_bad_values_file_is_rejected_by_the_schema(helm):
    result = run_helm(helm, "template", RELEASE, str(CHART), "-f", str(BAD), check=False)
    assert result.returncode != 0
    for complaint in ("/logLevel", "/image/pullPolicy", "/watchNamespaces/0", "replicaCount"):
        assert complaint in result.stderr, result.stderr


@pytest.mark.parametrize(("level", "flags"), [
    ("DEBUG", ["--verbose"]), ("INFO", []), ("WARNING", ["--quiet"]), ("ERROR", ["--quiet"]),
])
def test_log_level_maps_to_kopf_verbosity(helm, level, flags):
    (container,) = only(render(helm, sets=(f"logLevel={level}",)), "Deployment")[
        "spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["--all-namespaces", "--liveness=http://0.0.0.0:8080/healthz",
                                 *flags]
    assert env_of(container)["LOG_LEVEL"] == level


@pytest.mark.parametrize("setting", [
    "logLevel=verbose", "health.port=0", "resources.requests.memory=lots",
    "metrics.serviceMonitor.interval=often", "nodeImage=",
])
def test_each_bad_value_alone_fails_the_render(helm, setting):
    result = run_helm(helm, "template", RELEASE, str(CHART), "--set", setting, check=False)
    assert result.returncode != 0 and "schema" in result.stderr, result.stderr


def test_a_service_monitor_without_metrics_fails_with_the_fix(helm):
    result = run_helm(helm, "template", RELEASE, str(CHART), "--set",
                      "metrics.serviceMonitor.enabled=true", check=False)
    assert result.returncode != 0
    assert "needs metrics.enabled: true" in result.stderr


@pytest.mark.parametrize("values", [(), (NAMESPACED,)], ids=["default", "namespaced"])
def test_install_notes_show_how_to_create_a_first_braincluster(helm, values):
    args = ["install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--dry-run=client"]
    for path in values:
        args += ["-f", str(path)]
    notes = run_helm(helm, *args).stdout.split("NOTES:", 1)[1]
    assert "kind: BrainCluster" in notes and "kubectl apply" in notes
    assert "kubectl scale braincluster demo --replicas=3" in notes
    if values:
        assert "kubectl apply -n brain-a" in notes
        assert "registry.example.test/brain/node:0.1.0-test" in notes
