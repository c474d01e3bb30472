"""Fixtures of the kind e2e suite (opt-in: ``make e2e``); helpers in kindcluster."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kindcluster import KindCluster, skip_unless_kind_can_run


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: needs kind and docker (make e2e)")


@pytest.fixture(scope="module")
def kind(tmp_path_factory) -> Iterator[KindCluster]:
    helm, kubectl = skip_unless_kind_can_run()
    cluster = KindCluster(helm, kubectl, tmp_path_factory.mktemp("kind"))
    try:
        yield cluster.up()
    finally:
        cluster.down()
