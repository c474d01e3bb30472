"""``brainctl`` end to end: a real local cluster, supervised with the shared policy."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import yaml

from brain_operator import local
from evospikenet import procs
from support import REPO, wait_until

pytestmark = pytest.mark.slow

FAST = {
    "apiVersion": "brain.evospikenet.org/v1alpha1",
    "kind": "BrainCluster",
    "metadata": {"name": "ctl"},
    "spec": {
        "pfc": {"replicas": 3, "decisionRateHz": 20, "storage": {"ephemeral": True}},
        "vision": {"replicas": 2},
        "heartbeat": {"intervalSeconds": 0.25, "timeoutSeconds": 1.5, "cleanupSeconds": 60,
                      "startupGraceSeconds": 30},
    },
}


def brainctl(*args: str, home, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "brain_operator.cli", *args], capture_output=True, text=True,
        timeout=timeout, cwd=REPO, env={**os.environ, "BRAINCTL_HOME": str(home)},
    )


def write(tmp_path, doc, name="cluster.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_validate_prints_the_defaulted_spec(tmp_path):
    result = brainctl("validate", "-f", write(tmp_path, FAST), home=tmp_path)
    assert result.returncode == 0, result.stderr
    doc = yaml.safe_load(result.stdout)
    assert doc["spec"]["router"]["port"] == 7447  # a default the file did not give
    assert doc["spec"]["pfc"]["raft"]["electionTimeoutSeconds"] == 0.5


@pytest.mark.parametrize(
    "content, fragment",
    [
        ({**FAST, "spec": {"pfc": {"replicas": 2}}}, "spec.pfc.replicas"),
        ({**FAST, "spec": {"heartbeat": {"intervalSeconds": 2, "timeoutSeconds": 1}}},
         "spec.heartbeat.timeoutSeconds"),
        ({**FAST, "spec": {"vision": {"replicas": "two"}}}, "spec.vision.replicas"),
        ("pfc: [unclosed", "line"),
        (None, "no such file"),
    ],
)
def test_bad_files_fail_with_one_line_naming_the_problem(tmp_path, content, fragment):
    if content is None:
        path = str(tmp_path / "missing.yaml")
    elif isinstance(content, str):
        path = tmp_path / "bad.yaml"
        path.write_text(content)
    else:
        path = write(tmp_path, content)
    for command in ("validate", "up"):
        result = brainctl(command, "-f", str(path), home=tmp_path)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert result.stderr.startswith("error: ") and fragment in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_up_on_a_busy_port_fails_with_exit_2(tmp_path, free_port):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", free_port))
        busy.listen()
        result = brainctl("up", "-f", write(tmp_path, FAST), "--port", str(free_port),
                          "--duration", "5", home=tmp_path)
    assert result.returncode == 2
    assert f"port {free_port} is busy" in result.stderr


def test_status_without_a_running_cluster_says_so(tmp_path):
    result = brainctl("status", home=tmp_path)
    assert result.returncode == 2 and "no cluster is running" in result.stderr


def status_json(home) -> dict:
    result = brainctl("status", "--cluster", "ctl", "--json", home=home)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def state(home) -> dict:
    return json.loads((home / "ctl" / "state.json").read_text())


@pytest.fixture
def detached(tmp_path):
    path = write(tmp_path, FAST)
    result = brainctl("up", "-f", path, "--detach", "--wait", "120", home=tmp_path, timeout=150)
    pids: list[int] = []
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        assert "is Available" in result.stdout
        first = state(tmp_path)
        pids = [first["supervisor_pid"], first["router_pid"],
                *(n["pid"] for n in first["nodes"].values())]
        yield tmp_path, path
    finally:
        down = brainctl("down", "--cluster", "ctl", home=tmp_path)
        # Never leave a process behind, even when down failed: every PID the state file ever
        # named that still runs one of our programs (restarted nodes have new PIDs).
        state_file = tmp_path / "ctl" / "state.json"
        if state_file.exists():
            last = json.loads(state_file.read_text())
            pids += [last["supervisor_pid"], last["router_pid"],
                     *(n["pid"] for n in last["nodes"].values())]
        for pid in {p for p in pids if local.pid_alive(p)}:
            with contextlib.suppress(ProcessLookupError):  # it may exit meanwhile
                os.killpg(pid, signal.SIGKILL)
        assert down.returncode in (0, 2)


def test_detached_cluster_status_kill_and_down(detached):
    home, path = detached
    status = wait_until(
        lambda: (lambda s: s if s["phase"] == "Running" else None)(status_json(home)), 60,
        interval=0.5, what="phase Running",
    )
    assert status["leader"]["node"] in {"pfc-0", "pfc-1", "pfc-2"}
    members = {m["name"]: m for m in status["members"]}
    assert sorted(members) == ["pfc-0", "pfc-1", "pfc-2", "vision-0", "vision-1"]
    assert all(m["healthy"] for m in members.values())
    assert status["pfcReady"] == "3/3" and status["visionReady"] == "2/2"
    assert status["replacements"]["total"] == 0

    # Kill the leader: the status shows another leader and one replacement.
    old = status["leader"]["node"]
    old_pid = state(home)["nodes"][old]["pid"]
    killed = brainctl("kill", old, "--cluster", "ctl", home=home)
    assert killed.returncode == 0, killed.stderr
    after = wait_until(
        lambda: (lambda s: s if s["leader"] and s["leader"]["node"] != old
                 and s["replacements"]["total"] >= 1 else None)(status_json(home)),
        30, interval=0.5, what="a new leader and a replacement",
    )
    assert after["replacements"]["last"]["node"] == old
    assert state(home)["nodes"][old]["pid"] != old_pid  # restarted with the same id

    # A killed Vision node comes back with the same id.
    vision_pid = state(home)["nodes"]["vision-1"]["pid"]
    assert brainctl("kill", "vision-1", "--cluster", "ctl", home=home).returncode == 0
    wait_until(lambda: state(home)["nodes"]["vision-1"]["pid"] != vision_pid, 20,
               what="vision-1 restarted")
    back = wait_until(
        lambda: (lambda s: s if s["phase"] == "Running" and s["replacements"]["total"] >= 2
                 else None)(status_json(home)),
        60, interval=0.5, what="Running again with both replacements",
    )
    assert back["replacements"]["last"]["node"] == "vision-1"
    assert brainctl("kill", "nobody", "--cluster", "ctl", home=home).returncode == 2

    # Down stops everything it started.
    final = state(home)
    pids = [final["supervisor_pid"], final["router_pid"],
            *(n["pid"] for n in final["nodes"].values())]
    router_port = int(final["endpoint"].rsplit(":", 1)[1])
    down = brainctl("down", "--cluster", "ctl", home=home)
    assert down.returncode == 0, down.stderr
    for pid in pids:
        wait_until(lambda pid=pid: not os.path.exists(f"/proc/{pid}")
                   or open(f"/proc/{pid}/stat").read().split()[2] == "Z", 10,
                   what=f"pid {pid} gone")
    assert procs.port_is_free("127.0.0.1", router_port)
    assert brainctl("status", "--cluster", "ctl", home=home).returncode == 2


def test_up_with_a_duration_shows_progress_and_exits_zero(tmp_path):
    path = write(tmp_path, {**FAST, "metadata": {"name": "timed"}})
    started = time.monotonic()
    result = brainctl("up", "-f", path, "--duration", "20", home=tmp_path, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("phase=")]
    running = [ln for ln in lines if "phase=Running" in ln and "leader=pfc-" in ln]
    assert len(running) >= 2, result.stdout
    counts = [int(ln.split("decisions=")[1].split()[0]) for ln in running]
    assert counts[-1] > counts[0]  # a growing decision count
    assert "cluster timed stopped" in result.stdout
    assert time.monotonic() - started < 100
    assert not (tmp_path / "timed" / "state.json").exists()
