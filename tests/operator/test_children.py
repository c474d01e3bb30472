"""The operator turns a BrainCluster into its children and keeps them in line with the spec."""

from __future__ import annotations

from typing import Any

from brains import NAMESPACE, brain_cluster, condition, operator_running, status

from brain_operator import render
from brain_operator.spec import validate
from support import wait_until

# Exactly what the renderer produces (its own test pins the list): the operator must create
# all of it and nothing else.
CHILDREN = [
    (obj["kind"], obj["metadata"]["name"])
    for obj in render.render_all(validate(brain_cluster("demo")), NAMESPACE)
]


def children(api) -> dict[tuple[str, str], dict[str, Any]]:
    found = {(kind, name): api.get(kind, NAMESPACE, name) for kind, name in CHILDREN}
    return {key: obj for key, obj in found.items() if obj is not None}


def container(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]["containers"][0]


def env(obj: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value") for e in container(obj)["env"]}


def image_of(api, kind: str, name: str) -> str:
    return container(api.get(kind, NAMESPACE, name))["image"]


def test_a_new_cluster_gets_every_child_owned_by_it(operator_env):
    api = operator_env
    with operator_running():
        cluster = api.create(brain_cluster("demo", {"vision": {"replicas": 2}}))
        found = wait_until(lambda: len(children(api)) == len(CHILDREN) and children(api), 30,
                           what="all children")
    uid = cluster["metadata"]["uid"]
    for (kind, name), obj in found.items():
        refs = obj["metadata"]["ownerReferences"]
        assert [(r["kind"], r["name"], r["uid"], r["controller"]) for r in refs] == [
            ("BrainCluster", "demo", uid, True)
        ], (kind, name)
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == "demo"
    pfc, vision = found["StatefulSet", "demo-pfc"], found["StatefulSet", "demo-vision"]
    assert pfc["spec"]["replicas"] == 3 and vision["spec"]["replicas"] == 2
    assert container(pfc)["image"] == container(vision)["image"] == "evospikenet/node:test"
    assert env(pfc)["BRAIN_PEERS"] == "pfc-0,pfc-1,pfc-2"
    assert env(pfc)["BRAIN_CONNECT"] == f"tcp/demo-router.{NAMESPACE}.svc:7447"
    assert env(pfc)["BRAIN_HEARTBEAT_INTERVAL"] == "0.2"
    assert env(vision)["BRAIN_ROLE"] == "vision"
    assert container(found["Deployment", "demo-router"])["image"] == "eclipse/zenoh:1.10.2"
    assert found["PodDisruptionBudget", "demo-pfc"]["spec"]["maxUnavailable"] == 1
    assert found["Service", "demo-pfc"]["spec"]["clusterIP"] == "None"


def test_spec_changes_patch_the_children(operator_env):
    api = operator_env
    with operator_running():
        api.create(brain_cluster("demo"))
        wait_until(lambda: len(children(api)) == len(CHILDREN), 30, what="all children")

        api.patch("BrainCluster", NAMESPACE, "demo", {"spec": {"vision": {"replicas": 4}}})
        wait_until(
            lambda: api.get("StatefulSet", NAMESPACE, "demo-vision")["spec"]["replicas"] == 4,
            20, what="vision scaled to 4",
        )
        assert api.get("StatefulSet", NAMESPACE, "demo-pfc")["spec"]["replicas"] == 3

        api.patch("BrainCluster", NAMESPACE, "demo", {"spec": {"image": "evospikenet/node:v2"}})
        wait_until(
            lambda: image_of(api, "StatefulSet", "demo-pfc") == "evospikenet/node:v2"
            and image_of(api, "StatefulSet", "demo-vision") == "evospikenet/node:v2",
            20, what="both StatefulSets on the new image",
        )
        pfc = api.get("StatefulSet", NAMESPACE, "demo-pfc")
        # One pod at a time: the PFC group never restarts all at once.
        assert pfc["spec"]["updateStrategy"]["type"] == "RollingUpdate"
        assert image_of(api, "Deployment", "demo-router") == "eclipse/zenoh:1.10.2"


def test_a_pfc_replica_change_is_refused_with_a_warning(operator_env):
    api = operator_env
    with operator_running():
        api.create(brain_cluster("demo"))
        wait_until(lambda: len(children(api)) == len(CHILDREN), 30, what="all children")
        api.patch("BrainCluster", NAMESPACE, "demo", {"spec": {"pfc": {"replicas": 5}}})
        (event,) = wait_until(lambda: api.events(NAMESPACE, "PFCScalingRejected"), 20,
                              what="a PFCScalingRejected event")
        blocked = wait_until(lambda: condition(status(api, "demo"), "PFCScalingBlocked"), 20,
                             what="the PFCScalingBlocked condition")
        # Another change still applies while the PFC count stays pinned.
        api.patch("BrainCluster", NAMESPACE, "demo", {"spec": {"vision": {"replicas": 3}}})
        wait_until(
            lambda: api.get("StatefulSet", NAMESPACE, "demo-vision")["spec"]["replicas"] == 3,
            20, what="vision scaled to 3",
        )
    assert event["type"] == "Warning"
    assert "spec.pfc.replicas 5 not applied" in event["message"]
    assert event["involvedObject"]["name"] == "demo"
    assert blocked["status"] == "True" and "fixed membership of 3" in blocked["message"]
    pfc = api.get("StatefulSet", NAMESPACE, "demo-pfc")
    assert pfc["spec"]["replicas"] == 3
    assert env(pfc)["BRAIN_PEERS"] == "pfc-0,pfc-1,pfc-2"
    assert status(api, "demo")["pfc"]["desired"] == 3


def test_a_journal_storage_change_is_refused_and_the_volumes_stay(operator_env):
    api = operator_env
    with operator_running():
        api.create(brain_cluster("demo"))
        wait_until(lambda: len(children(api)) == len(CHILDREN), 30, what="all children")
        claims = api.get("StatefulSet", NAMESPACE, "demo-pfc")["spec"]["volumeClaimTemplates"]
        api.patch("BrainCluster", NAMESPACE, "demo", {"spec": {"pfc": {"storage": {
            "ephemeral": True}}}})
        (event,) = wait_until(lambda: api.events(NAMESPACE, "PFCScalingRejected"), 20,
                              what="a rejection event")
        blocked = wait_until(lambda: condition(status(api, "demo"), "PFCScalingBlocked"), 20,
                             what="the blocked condition")
    assert "spec.pfc.storage (ephemeral (emptyDir)) not applied" in event["message"]
    assert "1Gi volumes" in blocked["message"]
    pfc = api.get("StatefulSet", NAMESPACE, "demo-pfc")
    assert pfc["spec"]["volumeClaimTemplates"] == claims
    volumes = pfc["spec"]["template"]["spec"].get("volumes", [])
    assert all("emptyDir" not in v or v["name"] != "journal" for v in volumes)
