"""Helpers of tests/e2e: a kind cluster, kubectl and helm bound to its own kubeconfig."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from support import REPO

ENABLED = os.environ.get("BRAIN_KIND_E2E") == "1"
KIND = os.environ.get("KIND", "kind")
CLUSTER = os.environ.get("KIND_CLUSTER", "braincluster")
NODE_IMAGE = os.environ.get("NODE_IMAGE", "evospikenet/node:0.1.0")
OPERATOR_IMAGE = os.environ.get("OPERATOR_IMAGE", "evospikenet/operator:0.1.0")
ROUTER_IMAGE = os.environ.get("ROUTER_IMAGE", "eclipse/zenoh:1.10.2")
KEEP_CLUSTER = os.environ.get("BRAIN_KIND_KEEP") == "1"


def run(*argv: str, timeout: float = 120, check: bool = True, env: dict | None = None,
        stdin: str | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                            env=env, input=stdin)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return result


def find_tool(name: str, env_var: str) -> str | None:
    for candidate in (os.environ.get(env_var), str(REPO / ".tools" / "bin" / name),
                      shutil.which(name)):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def skip_unless_kind_can_run() -> tuple[str, str]:
    """(helm, kubectl) paths, or skip naming what is missing."""
    if not ENABLED:
        pytest.skip("kind e2e is opt-in: run `make e2e` (sets BRAIN_KIND_E2E=1)")
    if shutil.which("docker") is None:
        pytest.skip("kind e2e needs docker: no docker CLI on PATH")
    if run("docker", "info", check=False, timeout=30).returncode != 0:
        pytest.skip("kind e2e needs a running Docker engine (scripts/docker-up.sh starts one)")
    if shutil.which(KIND) is None:
        pytest.skip(f"kind e2e needs kind: {KIND!r} is not on PATH (install kind, or set KIND)")
    helm, kubectl = find_tool("helm", "HELM"), find_tool("kubectl", "KUBECTL")
    if helm is None or kubectl is None:
        pytest.skip("kind e2e needs helm and kubectl: run `make helm`")
    for image in (NODE_IMAGE, OPERATOR_IMAGE):
        if run("docker", "image", "inspect", image, check=False).returncode != 0:
            pytest.fail(f"image {image} is missing: run `make images` (make e2e does)")
    return helm, kubectl


class KindCluster:
    """A kind cluster (reused when it exists) and the tools pointed at it."""

    def __init__(self, helm: str, kubectl: str, workdir: Path) -> None:
        self.helm = helm
        self.kubectl_bin = kubectl
        self.kubeconfig = workdir / "kubeconfig"
        self.created = False

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def up(self) -> KindCluster:
        clusters = run(KIND, "get", "clusters", check=False).stdout.split()
        if CLUSTER not in clusters:
            run(KIND, "create", "cluster", "--name", CLUSTER, "--wait", "180s", timeout=600)
            self.created = True
        self.kubeconfig.write_text(run(KIND, "get", "kubeconfig", "--name", CLUSTER).stdout)
        images = [NODE_IMAGE, OPERATOR_IMAGE]
        # The router image is pulled by the kind node unless the host already has it.
        if run("docker", "image", "inspect", ROUTER_IMAGE, check=False).returncode == 0:
            images.append(ROUTER_IMAGE)
        run(KIND, "load", "docker-image", "--name", CLUSTER, *images, timeout=900)
        return self

    def down(self) -> None:
        if self.created and not KEEP_CLUSTER:
            run(KIND, "delete", "cluster", "--name", CLUSTER, check=False, timeout=300)

    def kubectl(self, *args: str, timeout: float = 120, check: bool = True,
                stdin: str | None = None) -> subprocess.CompletedProcess:
        return run(self.kubectl_bin, *args, timeout=timeout, check=check, env=self.env,
                   stdin=stdin)

    def helm_run(self, *args: str, timeout: float = 600,
                 check: bool = True) -> subprocess.CompletedProcess:
        return run(self.helm, *args, timeout=timeout, check=check, env=self.env)

    def get(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)
