"""``python -m brain_operator`` as a real process: flags, liveness, reconciling.

Namespaced watching (``--namespace X``) is not exercised: KMock 0.8 cannot parse the path
``/api/v1/namespaces`` that kopf lists first (DESIGN §7), so the process runs with ``-A``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request

from brains import NAMESPACE, brain_cluster, status

from evospikenet import procs
from support import wait_until


def run_main(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "brain_operator", *args],
        capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})},
    )


def test_help_lists_the_flags():
    result = run_main("--help")
    assert result.returncode == 0
    for flag in ("--all-namespaces", "--namespace", "--liveness", "--router-endpoint"):
        assert flag in result.stdout


def test_a_bad_router_template_is_one_clear_error():
    result = run_main("--router-endpoint", "tcp/{cluster}:7447")
    assert result.returncode == 2
    assert result.stderr.startswith("error: router endpoint template")
    assert "{name}" in result.stderr and "Traceback" not in result.stderr


def test_no_credentials_is_one_clear_error(tmp_path):
    result = run_main("--liveness", "none", env={"KUBECONFIG": str(tmp_path / "missing")})
    assert result.returncode == 2
    assert result.stderr.startswith("error: no Kubernetes credentials")
    assert "Traceback" not in result.stderr


def liveness_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 (local)
            return resp.status == 200
    except OSError:
        return False


def test_the_operator_process_reconciles_and_serves_liveness(
    operator_env, router, processes, free_port
):
    api = operator_env
    liveness = f"http://127.0.0.1:{free_port}/healthz"
    proc = processes.python(
        "-m", "brain_operator", "--all-namespaces", "--liveness", liveness,
        "--router-endpoint", router.endpoint, "--log-format", "plain",
        log_name="operator.log", env={"KUBECONFIG": os.environ["KUBECONFIG"]},
    )
    api.create(brain_cluster("solo", {"pfc": {"replicas": 1}, "vision": {"replicas": 0}}))
    wait_until(lambda: api.get("StatefulSet", NAMESPACE, "solo-pfc"), 60,
               what="the operator process created solo-pfc")
    wait_until(lambda: status(api, "solo").get("phase") == "Pending", 30,
               what="status written by the operator process")
    wait_until(lambda: liveness_ok(liveness), 20, what="liveness endpoint")
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    log = (processes.tmp_path / "operator.log").read_text()
    assert "Traceback" not in log
    procs.stop(proc)
