"""Helpers of tests/docker: a brain as Docker containers (router, 3 PFC, 2 Vision).

Opt-in (``make docker-e2e`` sets ``BRAIN_DOCKER_E2E=1`` and builds the image first); without
it every test here is skipped. The containers share one user-defined bridge network with a
fixed subnet, so each keeps its address across ``docker start`` and ``docker network
connect``; only the router publishes a port, on 127.0.0.1, where the test's Zenoh clients
connect. Every container and the network are removed at teardown, also after a failure.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
import uuid

import pytest

from evospikenet.netutil import free_tcp_port
from support import BrainObserver, wait_until

ENABLED = os.environ.get("BRAIN_DOCKER_E2E") == "1"
IMAGE = os.environ.get("BRAIN_NODE_IMAGE", "evospikenet/node:0.1.0")
CLUSTER = "dockere2e"
PFC_IDS = ["pfc-0", "pfc-1", "pfc-2"]
VISION_IDS = ["vision-0", "vision-1"]
RAFT_PORT = 7100
HTTP_PORT = 8000
# Candidate subnets for the test network; the first one no other network uses is taken.
SUBNETS = [f"172.{n}.240.0/24" for n in range(28, 32)] + ["192.168.240.0/24"]


def docker(*args: str, timeout: float = 60, check: bool = True,
           input_text: str | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,
                            input=input_text)
    if check and result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {result.stderr.strip()}")
    return result


def require_docker() -> None:
    if not ENABLED:
        pytest.skip("Docker e2e is opt-in: run `make docker-e2e` (sets BRAIN_DOCKER_E2E=1)")
    if shutil.which("docker") is None:
        pytest.fail("BRAIN_DOCKER_E2E=1 but no docker CLI; run scripts/docker-up.sh")
    if docker("info", check=False, timeout=30).returncode != 0:
        pytest.fail("BRAIN_DOCKER_E2E=1 but the Docker engine does not answer; "
                    "run scripts/docker-up.sh")
    if docker("image", "inspect", IMAGE, check=False).returncode != 0:
        pytest.fail(f"image {IMAGE} is missing; `make docker-e2e` builds it")


class DockerBrain:
    """The containers of one test run, named ``brain-e2e-<run>-<node>``."""

    def __init__(self) -> None:
        self.run_id = uuid.uuid4().hex[:8]
        self.network = f"brain-e2e-{self.run_id}"
        self.containers: list[str] = []
        self.ips: dict[str, str] = {}
        self.port = free_tcp_port()
        self.endpoint = f"tcp/127.0.0.1:{self.port}"

    def name(self, node: str) -> str:
        return f"brain-e2e-{self.run_id}-{node}"

    # ------------------------------------------------------------ setup and teardown

    def create_network(self) -> None:
        errors = []
        for subnet in SUBNETS:
            result = docker("network", "create", "--driver", "bridge", "--subnet", subnet,
                            "--label", f"brain-e2e={self.run_id}", self.network, check=False)
            if result.returncode == 0:
                hosts = list(ipaddress.ip_network(subnet).hosts())
                nodes = ["router", *PFC_IDS, *VISION_IDS]
                # .1 is the bridge gateway; the nodes take .10 and up.
                self.ips = {n: str(hosts[9 + i]) for i, n in enumerate(nodes)}
                return
            errors.append(result.stderr.strip())
        raise RuntimeError("no free subnet for the test network: " + "; ".join(errors))

    def run(self, node: str, *argv: str, publish: str | None = None) -> None:
        name = self.name(node)
        args = ["run", "--detach", "--name", name, "--hostname", node,
                "--network", self.network, "--ip", self.ips[node],
                "--label", f"brain-e2e={self.run_id}", "--env", "LOG_LEVEL=INFO"]
        if publish:
            args += ["--publish", publish]
        self.containers.append(name)
        docker(*args, IMAGE, *argv)

    def start(self) -> DockerBrain:
        self.create_network()
        self.run("router", "router", "--listen", "tcp/0.0.0.0:7447", "--lease-ms", "1000",
                 publish=f"127.0.0.1:{self.port}:7447")
        wait_until(lambda: "event=router_listening" in self.logs("router"), 60,
                   interval=0.2, what="the router container listening")
        connect = f"tcp/{self.ips['router']}:7447"
        common = ["--cluster", CLUSTER, "--connect", connect, "--heartbeat-interval", "0.2",
                  "--heartbeat-timeout", "2", "--vision-size", "512",
                  "--http-port", str(HTTP_PORT)]
        for node in VISION_IDS:
            self.run(node, "node", "--role", "vision", "--id", node, *common)
        raft = ",".join(f"{n}={self.ips[n]}:{RAFT_PORT}" for n in PFC_IDS)
        for node in PFC_IDS:
            self.run(node, "node", "--role", "pfc", "--id", node, *common,
                     "--peers", ",".join(PFC_IDS), "--raft-address", raft,
                     "--data-dir", "/var/lib/brain", "--decision-rate", "20")
        return self

    def remove(self) -> None:
        """Remove every container and the network; never raises (it runs after failures)."""
        for name in reversed(self.containers):
            docker("rm", "--force", "--volumes", name, check=False, timeout=60)
        docker("network", "rm", self.network, check=False, timeout=60)

    def logs(self, node: str, tail: int = 40) -> str:
        result = docker("logs", "--tail", str(tail), self.name(node), check=False)
        return result.stdout + result.stderr

    # ------------------------------------------------------------ faults

    def kill(self, node: str) -> None:
        docker("kill", self.name(node))

    def restart(self, node: str) -> None:
        docker("start", self.name(node))

    def disconnect(self, node: str) -> None:
        docker("network", "disconnect", self.network, self.name(node))

    def reconnect(self, node: str) -> None:
        docker("network", "connect", "--ip", self.ips[node], self.network, self.name(node))

    def metrics(self, node: str) -> dict[str, float]:
        """The node's Prometheus gauges, read inside the container (works while it is
        disconnected: ``docker exec`` needs no network)."""
        script = ("import urllib.request; print(urllib.request.urlopen("
                  f"'http://127.0.0.1:{HTTP_PORT}/metrics', timeout=5).read().decode())")
        out = docker("exec", self.name(node), "python", "-c", script, timeout=30).stdout
        return {m[1]: float(m[2]) for m in re.finditer(r"^(\w+) ([-+.\deE]+)$", out, re.M)}


class Observer(BrainObserver):
    """The host's view over the router's published port (see tests/support.py)."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(endpoint, CLUSTER, PFC_IDS, name="docker-e2e")
