"""Silent or failed members get their pod deleted (once, with an Event); young ones are spared.

KMock runs no StatefulSet controller, so the tests create the Pods a StatefulSet would.
"""

from __future__ import annotations

import time

from brains import (
    NAMESPACE,
    brain_cluster,
    led_by,
    members_by_name,
    node_pod,
    operator_running,
    status,
)

from brain_operator import metrics
from support import wait_until

PFC = ["pfc-0", "pfc-1", "pfc-2"]
VISION = ["vision-0", "vision-1"]
TIMEOUT = 1.5
INTERVAL = 0.2  # brains.FAST_HEARTBEAT


def pod_path(name: str) -> str:
    return f"/namespaces/{NAMESPACE}/pods/{name}"


def pod_listings(api) -> int:
    """How many times the operator has listed the cluster's pods (once per health pass)."""
    return api.requests("GET", f"/namespaces/{NAMESPACE}/pods")


def test_a_silent_node_is_replaced_exactly_once_and_a_young_one_is_left_alone(
    operator_env, members
):
    api = operator_env
    group = members("demo")
    group.set_raft(led_by("pfc-0", 1, PFC))
    group.start(*PFC, *VISION)
    long_ago, now = time.time() - 120, time.time()
    for node in PFC + VISION:
        # pfc-2's pod has just started: inside its startup grace of 20 s.
        api.create(node_pod("demo", node, now if node == "pfc-2" else long_ago))
    spec = {"heartbeat": {"timeoutSeconds": TIMEOUT, "startupGraceSeconds": 20}}
    with operator_running():
        api.create(brain_cluster("demo", spec))
        wait_until(lambda: status(api, "demo").get("phase") == "Running", 30,
                   what="phase Running")

        group.kill("vision-0", "pfc-2")
        killed = time.time()
        wait_until(lambda: api.get("Pod", NAMESPACE, "demo-vision-0") is None, 15,
                   what="the silent vision-0's pod deleted")
        # Not before the timeout (counted from the last heartbeat, up to a beat before the kill).
        assert time.time() - killed > TIMEOUT - INTERVAL

        # Several more health passes, all with pfc-2 silent for longer than the timeout.
        base = pod_listings(api)
        wait_until(
            lambda: time.time() > killed + 2 * TIMEOUT and pod_listings(api) >= base + 5,
            15, what="more health passes",
        )
        assert api.get("Pod", NAMESPACE, "demo-pfc-2") is not None
        assert api.requests("DELETE", pod_path("demo-vision-0")) == 1
        assert api.requests("DELETE", pod_path("demo-pfc-2")) == 0
        events = api.events(NAMESPACE, "ReplacedSilentMember")
        assert len(events) == 1
        assert events[0]["type"] == "Warning"
        assert "vision-0" in events[0]["message"] and "no heartbeat" in events[0]["message"]
        replaced = status(api, "demo")["replacements"]
        assert replaced["total"] == 1
        assert (replaced["last"]["node"], replaced["last"]["reason"]) == ("vision-0", "silent")
        assert members_by_name(status(api, "demo"))["pfc-2"]["healthy"] is False
        assert metrics.REGISTRY.get_sample_value(
            "brain_operator_replacements_total",
            {"namespace": NAMESPACE, "cluster": "demo", "role": "vision", "reason": "silent"},
        ) == 1

        # The StatefulSet recreates the pod and the node comes back: no second deletion.
        api.create(node_pod("demo", "vision-0", time.time()))
        group.start("vision-0")
        wait_until(
            lambda: members_by_name(status(api, "demo"))["vision-0"]["healthy"], 20,
            what="vision-0 healthy again",
        )
        assert api.requests("DELETE", pod_path("demo-vision-0")) == 1
        assert status(api, "demo")["replacements"]["total"] == 1


def test_a_crash_looping_pod_is_replaced_as_failed(operator_env, members):
    api = operator_env
    group = members("crashy")
    group.set_raft(led_by("pfc-0", 1, ["pfc-0"]))
    group.start("pfc-0", "vision-0")
    pod = node_pod("crashy", "vision-0", time.time())
    pod["status"]["containerStatuses"] = [
        {"name": "vision", "ready": False, "restartCount": 4,
         "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
    ]
    api.create(node_pod("crashy", "pfc-0", time.time()))
    api.create(pod)
    spec = {"pfc": {"replicas": 1}, "vision": {"replicas": 1},
            "heartbeat": {"startupGraceSeconds": 20}}
    with operator_running():
        api.create(brain_cluster("crashy", spec))
        (event,) = wait_until(lambda: api.events(NAMESPACE, "ReplacedFailedMember"), 20,
                              what="a ReplacedFailedMember event")
    assert "vision-0" in event["message"] and "failed" in event["message"]
    assert api.get("Pod", NAMESPACE, "crashy-vision-0") is None
    assert api.get("Pod", NAMESPACE, "crashy-pfc-0") is not None
