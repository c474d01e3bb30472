"""The operator's pure rules: pods as process views, status comparison, patch bodies, options."""

from __future__ import annotations

import dataclasses
import time

import pytest
from brains import node_pod

from brain_operator import reconcile, render, spec
from brain_operator.handlers import OperatorOptions
from brain_operator.kube import is_subset, matches, patch_body
from brain_operator.policy import MemberObservation
from brain_operator.watchdog import comparable, last_replacement, plannable, pod_failed, pod_refs


def make(body: dict | None = None) -> spec.BrainClusterSpec:
    doc = {"apiVersion": "brain.evospikenet.org/v1alpha1", "kind": "BrainCluster",
           "metadata": {"name": "demo", "namespace": "brains"}, "spec": body or {}}
    return spec.validate(doc)


def with_container_state(state: dict) -> dict:
    pod = node_pod("demo", "vision-0", time.time())
    pod["status"]["containerStatuses"] = [{"name": "vision", "state": state}]
    return pod


@pytest.mark.parametrize(
    ("pod", "failed"),
    [
        (node_pod("demo", "vision-0", 0.0), False),
        (node_pod("demo", "vision-0", 0.0, phase="Failed"), True),
        (with_container_state({"waiting": {"reason": "CrashLoopBackOff"}}), True),
        (with_container_state({"waiting": {"reason": "ContainerCreating"}}), False),
        (with_container_state({"terminated": {"exitCode": 137}}), True),
        (with_container_state({"terminated": {"exitCode": 0}}), False),
    ],
)
def test_pod_failed(pod, failed):
    assert pod_failed(pod) is failed


def test_pod_refs_name_nodes_and_skip_terminating_and_foreign_pods():
    started = 1_700_000_000.0
    pods = [node_pod("demo", "pfc-2", started), node_pod("demo", "vision-1", started)]
    pods[1]["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    router = node_pod("demo", "router-abc", started)
    router["metadata"]["labels"]["app.kubernetes.io/component"] = "router"
    no_start = node_pod("demo", "vision-0", started)
    del no_start["status"]["startTime"]
    no_start["metadata"]["creationTimestamp"] = "2023-11-14T22:13:20Z"
    refs = pod_refs([*pods, router, no_start], "demo")
    assert sorted(refs) == ["pfc-2", "vision-0"]
    assert refs["pfc-2"].view.pod == "demo-pfc-2"
    assert refs["pfc-2"].view.started_at == started
    assert refs["vision-0"].view.started_at == started  # from creationTimestamp


def test_a_member_without_a_pod_counts_as_just_started():
    now = 1000.0
    members = [MemberObservation("pfc-0", "pfc", started_at=1.0, failed=True),
               MemberObservation("pfc-1", "pfc", started_at=1.0)]
    refs = pod_refs([node_pod("demo", "pfc-1", 1.0)], "demo")
    out = {m.node_id: m for m in plannable(members, refs, now)}
    assert (out["pfc-0"].started_at, out["pfc-0"].failed) == (now, False)
    assert out["pfc-1"] is members[1]


def test_status_comparison_ignores_only_last_heartbeat():
    status = {"phase": "Running", "members": [{"name": "pfc-0", "lastHeartbeat": "t1"}]}
    later = {"phase": "Running", "members": [{"name": "pfc-0", "lastHeartbeat": "t2"}]}
    assert comparable(status) == comparable(later)
    assert comparable(status) != comparable({**later, "phase": "Degraded"})
    assert status["members"][0]["lastHeartbeat"] == "t1"  # the input is not modified


def test_last_replacement_survives_a_restart():
    status = {"replacements": {"total": 2, "last": {
        "node": "vision-1", "role": "vision", "reason": "silent", "message": "m",
        "time": "2024-05-01T10:00:00.250Z"}}}
    rep = last_replacement(status)
    assert (rep.node_id, rep.role, rep.reason, rep.message) == ("vision-1", "vision", "silent", "m")
    assert rep.at == pytest.approx(1714557600.25)
    assert last_replacement({}) is None


def test_is_subset_tolerates_server_defaults_but_not_changes():
    desired = {"spec": {"replicas": 3, "template": {"c": [{"name": "a", "image": "x"}]}}}
    live = {"spec": {"replicas": 3, "revisionHistoryLimit": 10,
                     "template": {"c": [{"name": "a", "image": "x", "tty": False}]}},
            "status": {}}
    assert is_subset(desired, live)
    assert not is_subset({"spec": {"replicas": 4}}, live)
    assert not is_subset({"spec": {"template": {"c": []}}}, live)
    assert is_subset({"cpu": 1}, {"cpu": "1"})


def test_patch_bodies_leave_immutable_fields_out():
    sts = render.node_statefulset(make(), "pfc", "brains")
    body = patch_body(sts)
    assert "apiVersion" not in body and "kind" not in body
    for field in ("selector", "serviceName", "podManagementPolicy", "volumeClaimTemplates"):
        assert field not in body["spec"]
    assert body["spec"]["replicas"] == 3 and "template" in body["spec"]
    assert "clusterIP" not in patch_body(render.node_service(make(), "pfc", "brains"))["spec"]


def test_selector_matching():
    assert matches({"a": "1", "b": "2"}, {"a": "1"})
    assert not matches({"a": "1"}, {"a": "1", "b": "2"})
    assert not matches(None, {"a": "1"})


def test_pfc_membership_is_read_from_the_live_statefulset():
    cluster = make({"pfc": {"replicas": 5}})
    (live,) = [o for o in reconcile.manifests(make(), "brains", {
        "metadata": {"name": "demo", "uid": "u"}}) if o["metadata"]["name"] == "demo-pfc"
        and o["kind"] == "StatefulSet"]
    assert reconcile.recorded_members(live) == 3
    assert reconcile.recorded_members(None) is None
    live["metadata"]["annotations"].clear()
    assert reconcile.recorded_members(live) == 3  # falls back to spec.replicas
    pinned = reconcile.with_pfc_replicas(cluster, 3)
    assert pinned.pfc_node_ids() == ["pfc-0", "pfc-1", "pfc-2"]
    assert "fixed membership of 3" in reconcile.pinned_message(cluster, pinned)


def test_journal_storage_is_recorded_and_pinned():
    (live,) = [o for o in reconcile.manifests(make(), "brains", {
        "metadata": {"name": "demo", "uid": "u"}}) if o["metadata"]["name"] == "demo-pfc"
        and o["kind"] == "StatefulSet"]
    assert reconcile.recorded_storage(live) == make().pfc.storage
    assert reconcile.recorded_storage(None) is None
    wanted = make({"pfc": {"storage": {"size": "5Gi", "storageClassName": "fast"}}})
    pinned = dataclasses.replace(
        wanted, pfc=dataclasses.replace(wanted.pfc, storage=reconcile.recorded_storage(live)))
    assert reconcile.held_back(wanted, pinned) and not reconcile.held_back(wanted, wanted)
    message = reconcile.pinned_message(wanted, pinned)
    assert "5Gi volumes of class fast" in message and "stay on 1Gi volumes" in message
    assert "replicas" not in message


def test_operator_options_from_the_environment_and_their_errors():
    options = OperatorOptions.from_env({"BRAIN_OPERATOR_ROUTER_ENDPOINT": "tcp/{name}.x:{port}"})
    assert options.router_for(make()) == "tcp/demo.x:7447"
    assert OperatorOptions().router_for(make()) == "tcp/demo-router.brains.svc:7447"
    assert OperatorOptions.from_env(options.to_env()) == options
    with pytest.raises(ValueError, match="placeholders"):
        OperatorOptions(router_endpoint="tcp/{cluster}:1")
    with pytest.raises(ValueError, match="must be a number"):
        OperatorOptions.from_env({"BRAIN_OPERATOR_STATUS_REFRESH_SECONDS": "soon"})
    with pytest.raises(ValueError, match="event level"):
        OperatorOptions(event_level="CHATTY")
