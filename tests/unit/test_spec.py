"""brain_operator.spec: CRD-driven defaults and validation, and the CRD itself."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from brain_operator import spec
from brain_operator.spec import FieldError, SpecError

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


def make_doc(spec_body: dict[str, Any] | None = None, **metadata: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": "brain.evospikenet.org/v1alpha1",
        "kind": "BrainCluster",
        "metadata": {"name": "demo", **metadata},
    }
    if spec_body is not None:
        doc["spec"] = spec_body
    return doc


def with_value(path: str, value: Any) -> dict[str, Any]:
    """A valid minimal document with one dotted path set (``None`` deletes it)."""
    doc = make_doc({})
    *parents, leaf = path.split(".")
    node = doc
    for part in parents:
        node = node.setdefault(part, {})
    if value is None:
        node.pop(leaf, None)
    else:
        node[leaf] = value
    return doc


def error_paths(doc: Any) -> list[str]:
    with pytest.raises(SpecError) as caught:
        spec.validate(doc)
    return caught.value.paths


# --------------------------------------------------------------------------------------------
# Defaults

FULL_DEFAULT_SPEC = {
    "image": "evospikenet/node:0.1.0",
    "imagePullPolicy": "IfNotPresent",
    "seed": 0,
    "router": {
        "image": "eclipse/zenoh:1.10.2",
        "port": 7447,
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
    },
    "pfc": {
        "replicas": 3,
        "decisionRateHz": 10,
        "raftPort": 7100,
        "raft": {"heartbeatIntervalSeconds": 0.05, "electionTimeoutSeconds": 0.5},
        "model": {"size": 128, "numModules": 6, "nHeads": 2, "timeSteps": 10},
        "storage": {"size": "1Gi", "ephemeral": False},
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}},
    },
    "vision": {
        "replicas": 2,
        "model": {"size": 512, "timeSteps": 10},
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}},
    },
    "heartbeat": {
        "intervalSeconds": 1,
        "timeoutSeconds": 5,
        "cleanupSeconds": 300,
        "startupGraceSeconds": 30,
    },
}


def test_every_default_applies_to_a_document_without_spec() -> None:
    doc = make_doc()
    defaulted = spec.apply_defaults(doc)
    assert defaulted["spec"] == FULL_DEFAULT_SPEC
    assert "spec" not in doc, "apply_defaults must not modify its argument"


def test_defaults_fill_in_around_given_values_at_every_depth() -> None:
    doc = make_doc({"pfc": {"raft": {"electionTimeoutSeconds": 1.0}, "replicas": 5}})
    got = spec.apply_defaults(doc)["spec"]
    assert got["pfc"]["raft"] == {"heartbeatIntervalSeconds": 0.05, "electionTimeoutSeconds": 1.0}
    assert got["pfc"]["replicas"] == 5
    assert got["pfc"]["model"] == FULL_DEFAULT_SPEC["pfc"]["model"]
    assert got["vision"] == FULL_DEFAULT_SPEC["vision"]


def test_a_given_object_replaces_its_default_rather_than_merging() -> None:
    # As in the API server: an object's default applies only when the object is absent.
    doc = make_doc({"pfc": {"resources": {"limits": {"memory": "1Gi"}}}})
    assert spec.apply_defaults(doc)["spec"]["pfc"]["resources"] == {"limits": {"memory": "1Gi"}}


def test_null_is_defaulted_unless_the_field_is_nullable() -> None:
    doc = make_doc({"seed": None, "pfc": {"storage": {"storageClassName": None}}})
    got = spec.apply_defaults(doc)["spec"]
    assert got["seed"] == 0
    assert got["pfc"]["storage"]["storageClassName"] is None


def test_validate_returns_typed_snake_case_views() -> None:
    cluster = spec.validate(make_doc({"pfc": {"storage": {"storageClassName": "fast"}}}))
    assert cluster.name == "demo"
    assert cluster.namespace == "default"
    assert cluster.generation == 1
    assert cluster.image == "evospikenet/node:0.1.0"
    assert cluster.image_pull_policy == "IfNotPresent"
    assert cluster.router.port == 7447
    assert cluster.pfc.replicas == 3
    assert cluster.pfc.decision_rate_hz == 10.0 and isinstance(cluster.pfc.decision_rate_hz, float)
    assert cluster.pfc.raft.heartbeat_interval_seconds == 0.05
    assert cluster.pfc.raft.election_timeout_seconds == 0.5
    assert cluster.pfc.model == spec.PFCModelSpec(size=128, num_modules=6, n_heads=2, time_steps=10)
    assert cluster.pfc.storage == spec.StorageSpec("1Gi", False, "fast")
    assert cluster.vision.model == spec.VisionModelSpec(size=512, time_steps=10)
    assert cluster.heartbeat == spec.HeartbeatSpec(1.0, 5.0, 300.0, 30.0)
    assert cluster.raw["spec"]["heartbeat"]["cleanupSeconds"] == 300
    assert cluster.pfc_node_ids() == ["pfc-0", "pfc-1", "pfc-2"]
    assert cluster.vision_node_ids() == ["vision-0", "vision-1"]
    assert cluster.node_ids() == ["pfc-0", "pfc-1", "pfc-2", "vision-0", "vision-1"]
    json.dumps(cluster.raw)  # renderers emit it back


def test_a_kubernetes_body_is_accepted_with_its_metadata_and_status() -> None:
    body = make_doc({}, namespace="brains", uid="abc", generation=4, labels={"a": "b"})
    body["status"] = {"phase": "Running", "somethingOld": [1, 2]}
    cluster = spec.validate(body)
    assert (cluster.namespace, cluster.generation) == ("brains", 4)


def test_read_only_mappings_are_accepted() -> None:
    # kopf passes bodies as Mapping views, not dicts.
    from types import MappingProxyType

    body = make_doc({"pfc": MappingProxyType({"replicas": 5})})
    assert spec.validate(MappingProxyType(body)).pfc.replicas == 5
    assert (
        spec.apply_defaults(MappingProxyType(body))["spec"]["pfc"]["raft"]["electionTimeoutSeconds"]
        == 0.5
    )


def test_spec_dataclasses_are_frozen() -> None:
    cluster = spec.validate(make_doc())
    with pytest.raises(AttributeError):
        cluster.pfc.replicas = 5  # type: ignore[misc]


# --------------------------------------------------------------------------------------------
# Validation: good and bad documents

GOOD = {
    "no spec": make_doc(),
    "empty spec": make_doc({}),
    "one pfc, no vision": make_doc({"pfc": {"replicas": 1}, "vision": {"replicas": 0}}),
    "seven pfc": make_doc({"pfc": {"replicas": 7}}),
    "null storage class": make_doc({"pfc": {"storage": {"storageClassName": None}}}),
    "integer quantity": make_doc({"vision": {"resources": {"limits": {"cpu": 2}}}}),
    "fast heartbeats": make_doc({"heartbeat": {"intervalSeconds": 0.1, "timeoutSeconds": 0.5}}),
    "election exactly 10x": with_value("spec.pfc.raft.electionTimeoutSeconds", 0.5),
    "integer where a number is expected": with_value("spec.pfc.decisionRateHz", 5),
}


@pytest.mark.parametrize("doc", GOOD.values(), ids=GOOD.keys())
def test_good_documents_validate(doc: dict[str, Any]) -> None:
    assert spec.validation_errors(doc) == []
    spec.validate(doc)


BAD = [
    ("even pfc replicas", with_value("spec.pfc.replicas", 2), {"spec.pfc.replicas"}),
    ("too many pfc", with_value("spec.pfc.replicas", 9), {"spec.pfc.replicas"}),
    # 8 is both out of range and even: one error, the rule is not evaluated on a bad input.
    ("even and out of range", with_value("spec.pfc.replicas", 8), {"spec.pfc.replicas"}),
    ("no pfc", with_value("spec.pfc.replicas", 0), {"spec.pfc.replicas"}),
    ("too many vision", with_value("spec.vision.replicas", 65), {"spec.vision.replicas"}),
    ("negative vision", with_value("spec.vision.replicas", -1), {"spec.vision.replicas"}),
    ("port 0", with_value("spec.router.port", 0), {"spec.router.port"}),
    ("port too high", with_value("spec.pfc.raftPort", 70000), {"spec.pfc.raftPort"}),
    ("zero decision rate", with_value("spec.pfc.decisionRateHz", 0), {"spec.pfc.decisionRateHz"}),
    (
        "timeout equal to interval",
        make_doc({"heartbeat": {"intervalSeconds": 5, "timeoutSeconds": 5}}),
        {"spec.heartbeat.timeoutSeconds"},
    ),
    (
        "timeout below interval",
        make_doc({"heartbeat": {"intervalSeconds": 2, "timeoutSeconds": 1}}),
        {"spec.heartbeat.timeoutSeconds"},
    ),
    (
        "cleanup not after timeout",
        make_doc({"heartbeat": {"timeoutSeconds": 10, "cleanupSeconds": 10}}),
        {"spec.heartbeat.cleanupSeconds"},
    ),
    (
        "election timeout too short",
        with_value("spec.pfc.raft.electionTimeoutSeconds", 0.19),
        {"spec.pfc.raft.electionTimeoutSeconds"},
    ),
    ("size not divisible", with_value("spec.pfc.model.size", 129), {"spec.pfc.model.size"}),
    ("unknown spec field", with_value("spec.replicas", 3), {"spec.replicas"}),
    ("typo in nested field", with_value("spec.pfc.replica", 3), {"spec.pfc.replica"}),
    ("unknown top-level field", with_value("specs", {}), {"specs"}),
    (
        "unknown resource key",
        with_value("spec.vision.resources.claims", []),
        {"spec.vision.resources.claims"},
    ),
    ("seed is a string", with_value("spec.seed", "x"), {"spec.seed"}),
    ("replicas is a float", with_value("spec.pfc.replicas", 2.5), {"spec.pfc.replicas"}),
    ("replicas is a bool", with_value("spec.pfc.replicas", True), {"spec.pfc.replicas"}),
    ("section is a scalar", with_value("spec.pfc", 3), {"spec.pfc"}),
    (
        "ephemeral is a string",
        with_value("spec.pfc.storage.ephemeral", "no"),
        {"spec.pfc.storage.ephemeral"},
    ),
    ("bad pull policy", with_value("spec.imagePullPolicy", "Sometimes"), {"spec.imagePullPolicy"}),
    (
        "bad quantity",
        with_value("spec.router.resources.requests", {"cpu": "lots"}),
        {"spec.router.resources.requests.cpu"},
    ),
    ("bad storage size", with_value("spec.pfc.storage.size", "big"), {"spec.pfc.storage.size"}),
    ("empty image", with_value("spec.image", ""), {"spec.image"}),
    ("missing name", with_value("metadata.name", None), {"metadata.name"}),
    ("missing metadata", with_value("metadata", None), {"metadata"}),
    ("uppercase name", with_value("metadata.name", "Demo"), {"metadata.name"}),
    ("name too long", with_value("metadata.name", "a" * 41), {"metadata.name"}),
    ("wrong apiVersion", with_value("apiVersion", "v1"), {"apiVersion"}),
    ("wrong kind", with_value("kind", "Pod"), {"kind"}),
    (
        "every error at once",
        make_doc(
            {
                "pfc": {"replicas": 4, "model": {"size": 7}},
                "vision": {"replicas": 100},
                "heartbeat": {"intervalSeconds": 10},
                "sed": 1,
            }
        ),
        {
            "spec.pfc.replicas",
            "spec.pfc.model.size",
            "spec.vision.replicas",
            "spec.heartbeat.timeoutSeconds",
            "spec.sed",
        },
    ),
]


@pytest.mark.parametrize(("doc", "paths"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_documents_name_every_offending_field(doc: dict[str, Any], paths: set[str]) -> None:
    got = error_paths(doc)
    assert set(got) == paths
    assert len(got) == len(set(got)), f"one error per field expected, got {got}"


@pytest.mark.parametrize(
    ("doc", "line"),
    [
        (with_value("spec.pfc.replicas", 2), "spec.pfc.replicas: must be odd (1, 3, 5 or 7)"),
        (with_value("spec.vision.replicas", 65), "spec.vision.replicas: must be <= 64 (got 65)"),
        (with_value("spec.pfc.replicas", 0), "spec.pfc.replicas: must be >= 1 (got 0)"),
        (with_value("spec.seed", "x"), "spec.seed: must be an integer (got str 'x')"),
        (
            with_value("spec.imagePullPolicy", "Sometimes"),
            "spec.imagePullPolicy: must be one of Always, IfNotPresent, Never (got 'Sometimes')",
        ),
        (with_value("spec.pfc.replica", 3), "spec.pfc.replica: unknown field (expected one of: "),
        (with_value("metadata.name", None), "metadata.name: required"),
        (
            make_doc({"heartbeat": {"intervalSeconds": 5}}),
            "spec.heartbeat.timeoutSeconds: timeoutSeconds must be greater than intervalSeconds",
        ),
    ],
)
def test_error_lines_say_what_is_wrong(doc: dict[str, Any], line: str) -> None:
    with pytest.raises(SpecError) as caught:
        spec.validate(doc)
    assert any(str(error).startswith(line) for error in caught.value.errors), str(caught.value)


def test_spec_error_is_one_line_per_error() -> None:
    error = SpecError([FieldError("spec.a", "bad"), FieldError("spec.b", "worse")])
    assert str(error) == "spec.a: bad\nspec.b: worse"
    assert isinstance(error, ValueError)
    assert str(SpecError("no such file")) == "no such file"


def test_a_non_mapping_document_is_an_error_not_a_crash() -> None:
    with pytest.raises(SpecError, match="must be a mapping"):
        spec.validate(["not", "a", "mapping"])  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# CEL rules and their Python twins

# A document that breaks each CRD rule. A new rule without an entry here fails the test below.
RULE_VIOLATIONS = {
    "self.replicas % 2 == 1": with_value("spec.pfc.replicas", 4),
    "self.electionTimeoutSeconds >= 10.0 * self.heartbeatIntervalSeconds": make_doc(
        {"pfc": {"raft": {"heartbeatIntervalSeconds": 0.1, "electionTimeoutSeconds": 0.5}}}
    ),
    "self.size % self.nHeads == 0": make_doc({"pfc": {"model": {"size": 128, "nHeads": 3}}}),
    "self.timeoutSeconds > self.intervalSeconds": make_doc(
        {"heartbeat": {"intervalSeconds": 3, "timeoutSeconds": 2}}
    ),
    "self.cleanupSeconds > self.timeoutSeconds": make_doc(
        {"heartbeat": {"timeoutSeconds": 20, "cleanupSeconds": 19}}
    ),
}


def test_every_crd_rule_has_exactly_one_python_twin() -> None:
    crd_rules = [rule.rule for rule in spec.crd_rules()]
    assert len(crd_rules) == len(set(crd_rules))
    assert set(crd_rules) == set(spec.CROSS_FIELD_RULES)


@pytest.mark.parametrize("rule", spec.crd_rules(), ids=lambda r: r.report_path)
def test_each_rule_reports_the_crd_message_at_its_field(rule: spec.CrdRule) -> None:
    assert rule.rule in RULE_VIOLATIONS, f"add a violating document for {rule.rule!r}"
    with pytest.raises(SpecError) as caught:
        spec.validate(RULE_VIOLATIONS[rule.rule])
    assert caught.value.errors == [FieldError(rule.report_path, rule.message)]


def test_rules_hold_for_the_defaults() -> None:
    defaulted = spec.apply_defaults(make_doc())
    for rule in spec.crd_rules():
        target = defaulted
        for part in rule.path:
            target = target[part]
        assert spec.CROSS_FIELD_RULES[rule.rule](target), rule.rule


def test_every_rule_has_a_message_a_user_understands() -> None:
    for rule in spec.crd_rules():
        assert rule.message and "self." not in rule.message, rule
        assert rule.field_path, f"{rule.rule} should point at the field it is about"


# --------------------------------------------------------------------------------------------
# The CRD itself


def walk(node: Any, path: str = "") -> Any:
    """Every schema node with its dotted path (items as [], map values as {})."""
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}" if path else name)
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def test_crd_names_and_version() -> None:
    crd = spec.load_crd()
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == spec.CRD_NAME == "brainclusters.brain.evospikenet.org"
    body = crd["spec"]
    assert body["group"] == spec.GROUP
    assert body["scope"] == "Namespaced"
    assert body["names"]["kind"] == spec.KIND
    assert body["names"]["plural"] == spec.PLURAL
    assert body["names"]["singular"] == "braincluster"
    assert set(body["names"]["shortNames"]) == {"bc", "brain"}
    (version,) = body["versions"]
    assert (version["name"], version["served"], version["storage"]) == (spec.VERSION, True, True)


def test_every_schema_field_is_described() -> None:
    missing = [path for path, node in walk(spec.root_schema()) if not node.get("description")]
    assert missing == []


def test_every_default_is_valid_under_its_own_schema() -> None:
    checked = 0
    for path, node in walk(spec.root_schema()):
        if "default" in node:
            default = spec.apply_schema_defaults(node["default"], node)
            validator = jsonschema.Draft202012Validator(spec.to_json_schema(node))
            assert list(validator.iter_errors(default)) == [], path
            checked += 1
    assert checked >= 25


def test_schema_is_structural_enough() -> None:
    # Every node says its type (int-or-string nodes say so instead) and objects nest with
    # default {} so that an absent section still gets its fields' defaults.
    for path, node in walk(spec.root_schema()):
        assert "type" in node or node.get("x-kubernetes-int-or-string"), path
        if node.get("type") == "object" and path.startswith("spec.") and "properties" in node:
            if not path.endswith("resources"):
                assert node.get("default") == {}, path
    metadata = spec.root_schema()["properties"]["metadata"]
    assert set(metadata.get("properties", {})) <= {"name", "generateName"}
    assert "default" not in json.dumps(metadata)


def _schema_at(json_path: str) -> dict[str, Any] | None:
    node: dict[str, Any] | None = spec.root_schema()
    for part in json_path.strip(".").split("."):
        node = (node or {}).get("properties", {}).get(part)
    return node


def test_subresources_and_printer_columns_point_at_real_fields() -> None:
    (version,) = spec.load_crd()["spec"]["versions"]
    scale = version["subresources"]["scale"]
    assert version["subresources"]["status"] == {}
    assert scale["specReplicasPath"] == ".spec.vision.replicas"
    assert scale["statusReplicasPath"] == ".status.vision.ready"
    assert scale["labelSelectorPath"] == ".status.vision.selector"
    for key in ("specReplicasPath", "statusReplicasPath", "labelSelectorPath"):
        assert _schema_at(scale[key]) is not None, key
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert list(columns) == ["PFC", "Vision", "Leader", "Term", "Phase", "Age"]
    for column in columns.values():
        if column["jsonPath"] != ".metadata.creationTimestamp":
            field = _schema_at(column["jsonPath"])
            assert field is not None and field["type"] == column["type"], column


def test_openapi_quirks_translate_to_json_schema() -> None:
    node = {"type": "number", "minimum": 0, "exclusiveMinimum": True, "nullable": True}
    validator = jsonschema.Draft202012Validator(spec.to_json_schema(node))
    assert validator.is_valid(None) and validator.is_valid(0.5)
    assert not validator.is_valid(0)
    enum = spec.to_json_schema({"type": "string", "enum": ["a"], "nullable": True})
    assert jsonschema.Draft202012Validator(enum).is_valid(None)


# --------------------------------------------------------------------------------------------
# Files


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_validate(path: Path) -> None:
    cluster = spec.load_file(path)
    assert cluster.pfc.replicas % 2 == 1


def test_examples_are_the_documented_clusters() -> None:
    demo = spec.load_file(REPO / "examples" / "braincluster.yaml")
    minimal = spec.load_file(REPO / "examples" / "minimal.yaml")
    assert (demo.name, demo.pfc.replicas, demo.vision.replicas) == ("demo", 3, 2)
    assert (minimal.pfc.replicas, minimal.vision.replicas) == (1, 1)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("spec: [unclosed\n", "invalid YAML at line"),
        ("a: b: c\n", "invalid YAML at line 1"),
        ("", "empty file"),
        ("- a\n- b\n", "expected a BrainCluster mapping, got a YAML list"),
        ("just a string\n", "expected a BrainCluster mapping, got a YAML str"),
    ],
)
def test_load_file_turns_every_failure_into_a_spec_error(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "cluster.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SpecError) as caught:
        spec.load_file(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_load_file_reports_spec_errors_by_path(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(with_value("spec.pfc.replicas", 2)))
    with pytest.raises(SpecError, match=r"spec\.pfc\.replicas: must be odd"):
        spec.load_file(path)


# --------------------------------------------------------------------------------------------
# Locating the CRD


def test_crd_path_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    crd = spec.load_crd()
    (version,) = crd["spec"]["versions"]
    version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["seed"]["default"] = 7
    copy_path = tmp_path / "crd.yaml"
    copy_path.write_text(yaml.safe_dump(crd))
    monkeypatch.setenv(spec.CRD_PATH_ENV, str(copy_path))
    assert spec.validate(make_doc()).seed == 7


def test_a_wrong_override_fails_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(spec.CRD_PATH_ENV, str(tmp_path / "missing.yaml"))
    with pytest.raises(FileNotFoundError, match=spec.CRD_PATH_ENV):
        spec.load_crd()


def test_load_crd_returns_a_copy() -> None:
    crd = spec.load_crd()
    crd["spec"]["versions"].clear()
    assert spec.load_crd()["spec"]["versions"]
    before = copy.deepcopy(spec.schema())
    spec.schema()["properties"].clear()
    assert spec.schema() == before
