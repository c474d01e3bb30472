"""Fixtures of the Docker e2e suite (opt-in: ``make docker-e2e``); helpers in dockerbrain."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dockerbrain import DockerBrain, Observer, require_docker


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "docker: needs a Docker engine (make docker-e2e)")


@pytest.fixture(scope="module")
def brain() -> Iterator[tuple[DockerBrain, Observer]]:
    require_docker()
    containers = DockerBrain()
    observer = None
    try:
        containers.start()
        observer = Observer(containers.endpoint)
        yield containers, observer
    finally:
        if observer is not None:
            observer.close()
        containers.remove()
