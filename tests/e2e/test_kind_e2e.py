"""The chart and images on a real cluster (kind): install, a BrainCluster, failover, scale.

Opt-in and slow: ``make e2e`` builds the images and sets ``BRAIN_KIND_E2E=1``; without it,
or where docker or kind is missing, every test here skips at once with the reason. The
steps build on each other and run in file order on one cluster.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import yaml
from kindcluster import NODE_IMAGE, OPERATOR_IMAGE, KindCluster

from support import REPO, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

RELEASE = "brain-e2e"
OPERATOR_NAMESPACE = "brain-e2e-system"
NAMESPACE = "brain-e2e"
NAME = "demo"


def condition(bc: dict, kind: str) -> str | None:
    for cond in bc.get("status", {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond.get("status")
    return None


def leader_of(bc: dict) -> dict:
    return bc.get("status", {}).get("leader") or {}


@pytest.fixture(scope="module")
def installed(kind: KindCluster) -> Iterator[KindCluster]:
    repository, tag = OPERATOR_IMAGE.rsplit(":", 1)
    try:
        kind.helm_run(
            "upgrade", "--install", RELEASE, str(REPO / "charts" / "brain-operator"),
            "--namespace", OPERATOR_NAMESPACE, "--create-namespace", "--wait",
            "--timeout", "5m", "--set", f"image.repository={repository}",
            "--set", f"image.tag={tag}", "--set", f"nodeImage={NODE_IMAGE}",
        )
        kind.kubectl("create", "namespace", NAMESPACE, check=False)
        example = yaml.safe_load((REPO / "examples" / "braincluster.yaml").read_text())
        example["spec"]["image"] = NODE_IMAGE
        kind.kubectl("apply", "-n", NAMESPACE, "-f", "-", stdin=yaml.safe_dump(example))
        yield kind
    finally:
        kind.kubectl("delete", "braincluster", NAME, "-n", NAMESPACE, "--ignore-not-found",
                     "--timeout", "120s", check=False, timeout=180)
        kind.helm_run("uninstall", RELEASE, "--namespace", OPERATOR_NAMESPACE, "--wait",
                      check=False)
        kind.kubectl("delete", "namespace", NAMESPACE, OPERATOR_NAMESPACE,
                     "--ignore-not-found", "--wait=false", check=False)


def braincluster(kind: KindCluster) -> dict:
    return kind.get("braincluster", NAME, "-n", NAMESPACE)


def test_the_example_braincluster_becomes_available(installed):
    kind = installed
    kind.kubectl("wait", f"braincluster/{NAME}", "-n", NAMESPACE,
                 "--for=condition=Available", "--timeout=600s", timeout=660)
    bc = braincluster(kind)
    assert leader_of(bc).get("node", "").startswith("pfc-")
    assert bc["status"]["pfcReady"] == "3/3"
    statefulsets = {s["metadata"]["name"] for s in
                    kind.get("statefulsets", "-n", NAMESPACE)["items"]}
    assert {f"{NAME}-pfc", f"{NAME}-vision"} <= statefulsets


def test_deleting_the_leader_pod_elects_a_new_leader_and_the_pod_returns(installed):
    kind = installed
    old = leader_of(braincluster(kind))
    pod = old.get("pod") or f"{NAME}-{old['node']}"
    old_uid = kind.get("pod", pod, "-n", NAMESPACE)["metadata"]["uid"]
    kind.kubectl("delete", "pod", pod, "-n", NAMESPACE, "--wait=false")
    deleted_at = time.monotonic()

    def new_leader() -> dict | None:
        leader = leader_of(braincluster(kind))
        moved = leader.get("node") and (leader["node"] != old["node"]
                                        or leader.get("term", 0) > old.get("term", 0))
        return leader if moved else None

    leader = wait_until(new_leader, 180, interval=1.0, what="a new leader in .status")
    print(f"new leader {leader['node']} (term {leader.get('term')}) in status "
          f"{time.monotonic() - deleted_at:.1f}s after deleting {pod}")

    def pod_back() -> bool:
        result = kind.kubectl("get", "pod", pod, "-n", NAMESPACE, "-o", "json", check=False)
        if result.returncode != 0:
            return False
        obj = json.loads(result.stdout)
        ready = any(c["type"] == "Ready" and c["status"] == "True"
                    for c in obj.get("status", {}).get("conditions") or [])
        return obj["metadata"]["uid"] != old_uid and ready

    wait_until(pod_back, 300, interval=2.0, what=f"{pod} recreated and Ready")
    wait_until(lambda: condition(braincluster(kind), "Available") == "True", 300,
               interval=2.0, what="Available again")


def test_scaling_vision_with_kubectl_scale(installed):
    kind = installed
    kind.kubectl("scale", "braincluster", NAME, "-n", NAMESPACE, "--replicas=3")
    wait_until(
        lambda: kind.get("statefulset", f"{NAME}-vision", "-n", NAMESPACE)["spec"]["replicas"]
        == 3, 120, interval=1.0, what="the Vision StatefulSet scaled to 3",
    )
    wait_until(lambda: braincluster(kind).get("status", {}).get("vision", {}).get("ready") == 3,
               600, interval=2.0, what="3 Vision members ready in .status")
    assert braincluster(kind)["spec"]["vision"]["replicas"] == 3


def test_uninstall_removes_the_operator(installed):
    kind = installed
    kind.kubectl("delete", "braincluster", NAME, "-n", NAMESPACE, "--timeout", "180s",
                 timeout=240)
    kind.helm_run("uninstall", RELEASE, "--namespace", OPERATOR_NAMESPACE, "--wait")
    deployments = kind.get("deployments", "-n", OPERATOR_NAMESPACE)["items"]
    assert deployments == []
