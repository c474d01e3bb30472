"""The operator image on its own: it starts, finds its CRD and renders a cluster."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dockerbrain import docker, require_docker

pytestmark = pytest.mark.docker

IMAGE = os.environ.get("BRAIN_OPERATOR_IMAGE", "evospikenet/operator:0.1.0")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "braincluster.yaml"


def test_operator_image_validates_and_renders_with_its_own_crd():
    require_docker()
    help_text = docker("run", "--rm", IMAGE, "--help").stdout
    assert "--all-namespaces" in help_text
    script = (
        "import sys, yaml; from brain_operator import spec, render; "
        "s = spec.validate(yaml.safe_load(sys.stdin)); "
        "print(len(render.render_all(s, 'default')), s.pfc.replicas)"
    )
    out = docker("run", "--rm", "-i", "--entrypoint", "python", IMAGE, "-c", script,
                 input_text=EXAMPLE.read_text()).stdout.split()
    assert out == ["7", "3"]
    assert "torch" not in docker("run", "--rm", "--entrypoint", "pip", IMAGE, "list",
                                 check=False).stdout
