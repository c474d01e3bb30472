"""Bring a BrainCluster's children in line with its spec (what the kopf handlers delegate to).

One rule needs the live objects, not only the spec: **the PFC membership is fixed**. Our
Raft layer runs pysyncobj with dynamic membership disabled (it would unpickle network data),
so a Raft group cannot safely grow or shrink. The count the PFC StatefulSet was created with
is recorded on it (``MEMBERS_ANNOTATION``); a later ``spec.pfc.replicas`` is not applied, the
StatefulSet and the peers list keep the recorded count, and the caller reports why. The
journal storage (``STORAGE_ANNOTATION``) is pinned the same way: a StatefulSet's volume
claims cannot change after creation.
Everything else (images, Vision replicas, timings) is patched in place; image changes roll
one pod at a time (StatefulSet RollingUpdate), so the PFC group never restarts all at once.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any

from . import render
from .kube import Applied, Kube
from .spec import BrainClusterSpec, StorageSpec, schema, validate

MEMBERS_ANNOTATION = "brain.evospikenet.org/pfc-members"
# The journal storage the PFC StatefulSet was created with: its volume claims cannot change.
STORAGE_ANNOTATION = "brain.evospikenet.org/pfc-storage"
DEFAULT_IMAGE_ENV = "BRAIN_DEFAULT_NODE_IMAGE"


@dataclasses.dataclass(frozen=True)
class Reconciled:
    """The outcome of one reconcile: the spec actually applied and what changed."""

    requested: BrainClusterSpec
    applied: BrainClusterSpec
    objects: list[Applied]

    @property
    def pfc_pinned(self) -> bool:
        """True when ``spec.pfc.replicas`` or ``.storage`` was not applied (module docstring)."""
        return held_back(self.requested, self.applied)


def held_back(requested: BrainClusterSpec, applied: BrainClusterSpec) -> bool:
    """Whether a PFC change that cannot be made to a live group was left out."""
    return (requested.pfc.replicas, requested.pfc.storage) != (
        applied.pfc.replicas, applied.pfc.storage
    )


def with_default_image(spec: BrainClusterSpec, image: str | None) -> BrainClusterSpec:
    """``spec`` running ``image`` when it asks for the CRD's default node image.

    The API server fills in the CRD default before the operator sees a spec, so "no image
    given" reads as "the CRD default": the operator's configured image (the chart's
    ``nodeImage``) replaces exactly that value, never an image the user chose.
    """
    if not image or spec.image != crd_default_image():
        return spec
    return dataclasses.replace(spec, image=image)


def crd_default_image() -> str:
    return str(schema()["properties"]["image"]["default"])


def with_pfc_replicas(spec: BrainClusterSpec, replicas: int) -> BrainClusterSpec:
    """``spec`` with another PFC member count (everything derived from it follows)."""
    if replicas == spec.pfc.replicas:
        return spec
    return dataclasses.replace(spec, pfc=dataclasses.replace(spec.pfc, replicas=replicas))


def recorded_members(statefulset: Mapping[str, Any] | None) -> int | None:
    """The PFC member count a live StatefulSet was created with, if it exists."""
    if statefulset is None:
        return None
    annotations = statefulset.get("metadata", {}).get("annotations") or {}
    try:
        return int(annotations[MEMBERS_ANNOTATION])
    except (KeyError, TypeError, ValueError):
        replicas = statefulset.get("spec", {}).get("replicas")
        return replicas if isinstance(replicas, int) and replicas > 0 else None


def recorded_storage(statefulset: Mapping[str, Any] | None) -> StorageSpec | None:
    """The journal storage a live PFC StatefulSet was created with, if recorded."""
    annotations = ((statefulset or {}).get("metadata") or {}).get("annotations") or {}
    try:
        data = json.loads(annotations[STORAGE_ANNOTATION])
        return StorageSpec(size=str(data["size"]), ephemeral=bool(data["ephemeral"]),
                           storage_class_name=data.get("storageClassName"))
    except (KeyError, TypeError, ValueError):
        return None


def storage_annotation(storage: StorageSpec) -> str:
    return json.dumps({"size": storage.size, "ephemeral": storage.ephemeral,
                       "storageClassName": storage.storage_class_name}, sort_keys=True)


def pfc_membership(kube: Kube, spec: BrainClusterSpec, namespace: str) -> BrainClusterSpec:
    """``spec`` with the PFC count and journal storage pinned to the live group's."""
    live = kube.read("StatefulSet", namespace, render.component_name(spec, "pfc"))
    members = recorded_members(live)
    if members is not None:
        spec = with_pfc_replicas(spec, members)
    storage = recorded_storage(live)
    if storage is not None and storage != spec.pfc.storage:
        spec = dataclasses.replace(spec, pfc=dataclasses.replace(spec.pfc, storage=storage))
    return spec


def manifests(
    spec: BrainClusterSpec, namespace: str, owner: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The rendered children, with the PFC membership recorded on its StatefulSet."""
    objects = render.render_all(spec, namespace, owner)
    for obj in objects:
        if obj["kind"] == "StatefulSet" and obj["metadata"]["name"].endswith("-pfc"):
            annotations = obj["metadata"].setdefault("annotations", {})
            annotations[MEMBERS_ANNOTATION] = str(spec.pfc.replicas)
            annotations[STORAGE_ANNOTATION] = storage_annotation(spec.pfc.storage)
    return objects


def reconcile(kube: Kube, body: Mapping[str, Any]) -> Reconciled:
    """Validate ``body`` and create or patch every child; raises SpecError when invalid."""
    requested = with_default_image(validate(body), os.environ.get(DEFAULT_IMAGE_ENV))
    namespace = body["metadata"]["namespace"]
    applied = pfc_membership(kube, requested, namespace)
    objects = [kube.apply(obj) for obj in manifests(applied, namespace, body)]
    return Reconciled(requested, applied, objects)


def _describe(storage: StorageSpec) -> str:
    if storage.ephemeral:
        return "ephemeral (emptyDir)"
    return f"{storage.size} volumes" + (
        f" of class {storage.storage_class_name}" if storage.storage_class_name else ""
    )


def pinned_message(requested: BrainClusterSpec, applied: BrainClusterSpec) -> str:
    """Why a PFC change was not applied, and what the user can do."""
    parts = []
    if requested.pfc.replicas != applied.pfc.replicas:
        parts.append(
            f"spec.pfc.replicas {requested.pfc.replicas} not applied: the PFC Raft group has "
            f"a fixed membership of {applied.pfc.replicas} (dynamic Raft membership is "
            f"disabled), so the PFC StatefulSet stays at {applied.pfc.replicas}; set "
            f"spec.pfc.replicas back to {applied.pfc.replicas}, or create a new BrainCluster "
            "for another size"
        )
    if requested.pfc.storage != applied.pfc.storage:
        parts.append(
            f"spec.pfc.storage ({_describe(requested.pfc.storage)}) not applied: the Raft "
            f"journals stay on {_describe(applied.pfc.storage)}, because a StatefulSet's "
            "volume claims cannot change after creation; set spec.pfc.storage back, or "
            "create a new BrainCluster"
        )
    return "; ".join(parts)


def pinned_condition(
    requested: BrainClusterSpec, applied: BrainClusterSpec, since: str
) -> dict[str, Any]:
    """The ``PFCScalingBlocked`` status condition shown while a change is not applied."""
    return {
        "type": "PFCScalingBlocked",
        "status": "True",
        "reason": "FixedRaftMembership",
        "message": pinned_message(requested, applied),
        "lastTransitionTime": since,
    }
