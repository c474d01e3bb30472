"""Fixtures for the operator tests: a KMock API server, a real Zenoh router, the operator."""

from __future__ import annotations

import logging

import pytest
from brains import Members
from kmock_api import EmulatedApi
from kubernetes.config import kube_config


@pytest.fixture
def api(tmp_path, monkeypatch):
    """The emulated API server; the operator (and kopf's login) reach it via $KUBECONFIG."""
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    server = EmulatedApi().start()
    try:
        kubeconfig = str(server.write_kubeconfig(tmp_path / "kubeconfig"))
        monkeypatch.setenv("KUBECONFIG", kubeconfig)
        # The kubernetes client reads $KUBECONFIG once, at import: point it here explicitly.
        monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", kubeconfig)
        yield server
    finally:
        server.stop()


@pytest.fixture
def operator_env(api, router, monkeypatch):
    """Point the operator's monitors at the test router on 127.0.0.1."""
    monkeypatch.setenv("BRAIN_OPERATOR_ROUTER_ENDPOINT", router.endpoint)
    monkeypatch.setenv("BRAIN_OPERATOR_STATUS_REFRESH_SECONDS", "5")
    return api


@pytest.fixture
def members(processes, router):
    """Start heartbeating members of cluster ``name``: ``members("demo").start("pfc-0")``."""
    return lambda cluster: Members(processes, router, cluster)
