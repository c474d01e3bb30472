"""The operator's default node image and its Prometheus metrics (pure parts)."""

from __future__ import annotations

import urllib.request

from brain_operator import metrics
from brain_operator.reconcile import crd_default_image, with_default_image
from brain_operator.spec import validate
from evospikenet.netutil import free_tcp_port

DOC = {"apiVersion": "brain.evospikenet.org/v1alpha1", "kind": "BrainCluster",
       "metadata": {"name": "m", "namespace": "ns"}, "spec": {}}


def test_the_configured_image_replaces_only_the_crd_default():
    defaulted = validate(DOC)
    assert defaulted.image == crd_default_image()
    assert with_default_image(defaulted, "registry.local/node:7").image == "registry.local/node:7"
    chosen = validate({**DOC, "spec": {"image": "mine/node:1"}})
    assert with_default_image(chosen, "registry.local/node:7").image == "mine/node:1"
    assert with_default_image(defaulted, None) is defaulted


def sample(name, **labels):
    return metrics.REGISTRY.get_sample_value(name, labels)


def test_status_is_mirrored_into_gauges_and_served():
    status = {"phase": "Degraded", "pfc": {"ready": 2}, "vision": {"ready": 1},
              "leader": {"node": "pfc-1", "term": 4}}
    metrics.observe_status("ns", "m", status)
    assert sample("brain_operator_cluster_phase", namespace="ns", cluster="m",
                  phase="Degraded") == 1
    assert sample("brain_operator_cluster_phase", namespace="ns", cluster="m",
                  phase="Running") == 0
    assert sample("brain_operator_members_ready", namespace="ns", cluster="m", role="pfc") == 2
    assert sample("brain_operator_leader_term", namespace="ns", cluster="m") == 4
    metrics.observe_status("ns", "m", {"phase": "QuorumLost", "leader": None})
    assert sample("brain_operator_leader_term", namespace="ns", cluster="m") == 0

    port = free_tcp_port()
    metrics.serve(port, host="127.0.0.1")
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'brain_operator_cluster_phase{cluster="m",namespace="ns",phase="QuorumLost"} 1.0' \
        in body
