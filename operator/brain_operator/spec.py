"""The BrainCluster spec: defaults and validation driven by the CRD, plus typed views of it.

The CRD file (``crds/braincluster.yaml``) is the single source of truth: defaults, bounds,
enums and cross-field rules are read from it, so ``brainctl`` (no API server) accepts and
rejects exactly what ``kubectl apply`` would. The API server evaluates the CRD's CEL rules;
this module evaluates the same rules with one Python function per rule (``CROSS_FIELD_RULES``,
keyed by the CEL text) and reports them with the CRD's own messages.

Pure: apart from reading the CRD and ``load_file``'s YAML, nothing here does I/O.
"""

from __future__ import annotations

import copy
import functools
import importlib.resources
import os
import re
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import jsonschema
import yaml

GROUP = "brain.evospikenet.org"
VERSION = "v1alpha1"
KIND = "BrainCluster"
PLURAL = "brainclusters"
API_VERSION = f"{GROUP}/{VERSION}"
CRD_NAME = f"{PLURAL}.{GROUP}"
DEFAULT_NAMESPACE = "default"
CRD_PATH_ENV = "BRAIN_CRD_PATH"

# --------------------------------------------------------------------------------------------
# Errors


@dataclass(frozen=True)
class FieldError:
    """One problem with one field; ``path`` is dotted (``spec.pfc.replicas``), '' for the file."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class SpecError(ValueError):
    """An invalid BrainCluster document; carries every problem found, not just the first."""

    def __init__(self, errors: list[FieldError] | FieldError | str) -> None:
        if isinstance(errors, str):
            errors = [FieldError("", errors)]
        elif isinstance(errors, FieldError):
            errors = [errors]
        self.errors: list[FieldError] = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))

    @property
    def paths(self) -> list[str]:
        """The offending field paths, in report order (handy for tests and status)."""
        return [e.path for e in self.errors]


# --------------------------------------------------------------------------------------------
# Loading the CRD


def _crd_candidates() -> Iterator[Path | Traversable]:
    """Where the CRD may live: an explicit override, the source tree, then package data."""
    override = os.environ.get(CRD_PATH_ENV)
    if override:
        # An explicit override that is wrong must fail loudly, not fall back silently.
        yield Path(override)
        return
    yield Path(__file__).resolve().parents[2] / "crds" / "braincluster.yaml"
    try:
        yield importlib.resources.files("brain_operator") / "crds" / "braincluster.yaml"
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - odd installs only
        return


def crd_path() -> Path | Traversable:
    """The CRD file that ``load_crd`` reads (raises FileNotFoundError naming what was tried)."""
    tried = []
    for candidate in _crd_candidates():
        if candidate.is_file():
            return candidate
        tried.append(str(candidate))
    raise FileNotFoundError(
        "BrainCluster CRD not found; tried " + ", ".join(tried) + f" (set {CRD_PATH_ENV})"
    )


@functools.lru_cache(maxsize=8)
def _read_crd(location: Path | Traversable) -> dict[str, Any]:
    """Parse the CRD once per location; callers get copies or treat it as read-only."""
    crd = yaml.safe_load(location.read_text(encoding="utf-8"))
    if not isinstance(crd, dict) or crd.get("kind") != "CustomResourceDefinition":
        raise ValueError(f"{location} is not a CustomResourceDefinition")
    return crd


def load_crd() -> dict[str, Any]:
    """The CRD as a dict (a fresh copy: callers may mutate it, e.g. to package it)."""
    return copy.deepcopy(_read_crd(crd_path()))


def _schema_of(crd: Mapping[str, Any]) -> dict[str, Any]:
    for entry in crd["spec"]["versions"]:
        if entry["name"] == VERSION:
            return entry["schema"]["openAPIV3Schema"]
    raise ValueError(f"CRD has no version {VERSION}")


def _root() -> dict[str, Any]:
    """The cached root openAPIV3Schema, shared: never mutate it (use ``root_schema``)."""
    return _schema_of(_read_crd(crd_path()))


def root_schema() -> dict[str, Any]:
    """The whole object's openAPIV3Schema (apiVersion, kind, metadata, spec, status)."""
    return copy.deepcopy(_root())


def schema() -> dict[str, Any]:
    """The openAPIV3Schema of ``spec``."""
    return copy.deepcopy(_root()["properties"]["spec"])


# --------------------------------------------------------------------------------------------
# Structural defaulting


def _default_object(value: Any, node: Mapping[str, Any]) -> Any:
    """Apply ``node``'s defaults inside ``value`` the way the API server does.

    A property's default applies when the property is absent (or null and not nullable) and
    its parent object exists; defaulted values are then defaulted in turn, which is why
    ``default: {}`` on an object makes its fields' defaults apply.
    """
    if isinstance(value, dict):
        props = node.get("properties", {})
        for key, sub in props.items():
            if "default" in sub and (
                key not in value or (value[key] is None and not sub.get("nullable", False))
            ):
                value[key] = copy.deepcopy(sub["default"])
        for key, item in value.items():
            if key in props:
                value[key] = _default_object(item, props[key])
            elif isinstance(node.get("additionalProperties"), dict):
                value[key] = _default_object(item, node["additionalProperties"])
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        return [_default_object(item, node["items"]) for item in value]
    return value


def apply_schema_defaults(value: Any, node: Mapping[str, Any]) -> Any:
    """A copy of ``value`` with the defaults of schema ``node`` (any level) applied."""
    return _default_object(_plain(value), node)


def _plain(value: Any) -> Any:
    """A deep copy made of dicts and lists (kopf hands over read-only Mapping views)."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return copy.deepcopy(value)


def apply_defaults(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``doc`` with every CRD default applied (``doc`` itself is left untouched)."""
    return _default_object(_plain(doc), _root())


# --------------------------------------------------------------------------------------------
# Validation: envelope, unknown fields, schema, cross-field rules


def format_path(parts: Iterable[str | int]) -> str:
    """``["spec", "pfc", "replicas"]`` → ``spec.pfc.replicas``; list indices as ``[0]``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _envelope_errors(doc: Mapping[str, Any]) -> list[FieldError]:
    """The checks the API server makes before the schema: which resource, and its name."""
    errors = []
    if doc.get("apiVersion") != API_VERSION:
        got = doc.get("apiVersion")
        errors.append(FieldError("apiVersion", f"must be {API_VERSION} (got {got!r})"))
    if doc.get("kind") != KIND:
        errors.append(FieldError("kind", f"must be {KIND} (got {doc.get('kind')!r})"))
    metadata = doc.get("metadata")
    if not isinstance(metadata, dict):
        errors.append(FieldError("metadata", "required: a mapping with at least a name"))
        return errors
    if not metadata.get("name"):
        errors.append(FieldError("metadata.name", "required"))
    namespace = metadata.get("namespace")
    if namespace is not None and not isinstance(namespace, str):
        errors.append(FieldError("metadata.namespace", "must be a string"))
    return errors


def _unknown_field_errors(
    value: Any, node: Mapping[str, Any], path: tuple[str | int, ...]
) -> Iterator[FieldError]:
    """Fields the schema does not declare: the API server would silently prune them, but a
    local user with a typo (``replica:``) deserves to hear about it."""
    if node.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict):
        props = node.get("properties")
        extra = node.get("additionalProperties")
        for key, item in value.items():
            if props is not None and key in props:
                yield from _unknown_field_errors(item, props[key], (*path, key))
            elif isinstance(extra, dict):
                yield from _unknown_field_errors(item, extra, (*path, key))
            elif props is not None and extra is not True:
                allowed = ", ".join(sorted(props))
                message = f"unknown field (expected one of: {allowed})"
                yield FieldError(format_path((*path, key)), message)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for index, item in enumerate(value):
            yield from _unknown_field_errors(item, node["items"], (*path, index))


_OPENAPI_ONLY_KEYS = ("nullable", "x-kubernetes-validations")


def to_json_schema(node: Any) -> Any:
    """An OpenAPI v3.0 (Kubernetes) schema as JSON Schema 2020-12.

    Differences handled: ``nullable``, boolean ``exclusiveMinimum``/``exclusiveMaximum``;
    ``x-kubernetes-*`` annotations are unknown keywords, which JSON Schema ignores.
    """
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _OPENAPI_ONLY_KEYS:
            continue
        if key in ("properties", "patternProperties"):
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not", "anyOf", "allOf", "oneOf"):
            out[key] = to_json_schema(value)
        else:
            out[key] = value
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if out.get(exclusive) is True:
            out[exclusive] = out.pop(bound)
        elif out.get(exclusive) is False:
            del out[exclusive]
    if node.get("nullable"):
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:
            return {"anyOf": [{"type": "null"}, out]}
    return out


def _given(value: Any) -> str:
    """How an offending value is shown: scalars verbatim, containers by type."""
    if isinstance(value, (dict, list)):
        return "a mapping" if isinstance(value, dict) else "a list"
    return f"{type(value).__name__} {value!r}"


_TYPE_WORDS = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def _schema_message(error: jsonschema.ValidationError) -> str:
    """A jsonschema error in words a cluster user reads (bounds and choices, what was given)."""
    kind, expected, got = error.validator, error.validator_value, error.instance
    if kind == "type":
        wanted = [expected] if isinstance(expected, str) else list(expected)
        return f"must be {' or '.join(_TYPE_WORDS.get(t, t) for t in wanted)} (got {_given(got)})"
    if (kind in ("anyOf", "pattern")) and error.schema.get("x-kubernetes-int-or-string"):
        return f"must be a quantity such as 500m, 2 or 1Gi (got {got!r})"
    if kind == "enum":
        return f"must be one of {', '.join(map(str, expected))} (got {got!r})"
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        relation = {
            "minimum": ">=",
            "maximum": "<=",
            "exclusiveMinimum": ">",
            "exclusiveMaximum": "<",
        }[kind]
        return f"must be {relation} {expected} (got {got!r})"
    if kind == "pattern":
        return f"must match {expected} (got {got!r})"
    if kind in ("maxLength", "minLength"):
        word = "at most" if kind == "maxLength" else "at least"
        return f"must be {word} {expected} characters long (got {len(got)})"
    return error.message


@functools.lru_cache(maxsize=8)
def _validator(
    location: Path | Traversable,
) -> jsonschema.Draft202012Validator:
    """One compiled validator per CRD file."""
    root = to_json_schema(_schema_of(_read_crd(location)))
    root["properties"] = {k: v for k, v in root["properties"].items() if k != "status"}
    return jsonschema.Draft202012Validator(root)


def _schema_errors(doc: Mapping[str, Any]) -> list[FieldError]:
    """JSON-schema errors of everything but ``status`` (the operator's to write, not users')."""
    checked = {k: v for k, v in doc.items() if k != "status"}
    validator = _validator(crd_path())
    return [
        FieldError(format_path(error.absolute_path), _schema_message(error))
        for error in validator.iter_errors(checked)
    ]


# One Python function per CEL rule in the CRD, keyed by the rule's exact CEL text. Each takes
# the object the rule is attached to (CEL's ``self``), after defaulting, and returns True when
# the rule holds. tests/unit/test_spec.py checks that this table and the CRD match one to one.
CROSS_FIELD_RULES: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    "self.replicas % 2 == 1": lambda pfc: pfc["replicas"] % 2 == 1,
    "self.electionTimeoutSeconds >= 10.0 * self.heartbeatIntervalSeconds": (
        lambda raft: raft["electionTimeoutSeconds"] >= 10.0 * raft["heartbeatIntervalSeconds"]
    ),
    "self.size % self.nHeads == 0": lambda model: model["size"] % model["nHeads"] == 0,
    "self.timeoutSeconds > self.intervalSeconds": (
        lambda hb: hb["timeoutSeconds"] > hb["intervalSeconds"]
    ),
    "self.cleanupSeconds > self.timeoutSeconds": (
        lambda hb: hb["cleanupSeconds"] > hb["timeoutSeconds"]
    ),
}


@dataclass(frozen=True)
class CrdRule:
    """One ``x-kubernetes-validations`` entry and where in the schema it is attached."""

    path: tuple[str, ...]
    rule: str
    message: str
    field_path: str | None
    inputs: tuple[str, ...] = ()  # the object's scalar fields, which a rule may read

    @property
    def report_path(self) -> str:
        """The field an error names: the rule's object plus its ``fieldPath``."""
        extra = tuple(p for p in (self.field_path or "").split(".") if p)
        return format_path((*self.path, *extra))


def crd_rules(node: Mapping[str, Any] | None = None, path: tuple[str, ...] = ()) -> list[CrdRule]:
    """Every CEL rule of the CRD (object properties only: the only kind this CRD uses)."""
    node = _root() if node is None else node
    scalars = tuple(
        name
        for name, sub in node.get("properties", {}).items()
        if sub.get("type") not in ("object", "array")
    )
    found = [
        CrdRule(path, entry["rule"], entry["message"].strip(), entry.get("fieldPath"), scalars)
        for entry in node.get("x-kubernetes-validations", [])
    ]
    for key, sub in node.get("properties", {}).items():
        found.extend(crd_rules(sub, (*path, key)))
    return found


def _lookup(doc: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(doc, dict) or part not in doc:
            return None
        doc = doc[part]
    return doc


def _rule_errors(doc: Mapping[str, Any], schema_errors: list[FieldError]) -> list[FieldError]:
    """CEL-rule errors. A rule is skipped when the object or one of its scalar fields already
    failed the schema: its inputs may be of the wrong type, and that error is reported."""
    errors = []
    for rule in crd_rules(_root()):
        target = _lookup(doc, rule.path)
        prefix = format_path(rule.path)
        inputs = {prefix, *(f"{prefix}.{name}" for name in rule.inputs)}
        if not isinstance(target, dict) or any(e.path in inputs for e in schema_errors):
            continue
        check = CROSS_FIELD_RULES.get(rule.rule)
        if check is None:  # a CRD rule without a Python twin is a bug here, not the user's
            raise RuntimeError(f"no Python check for CRD rule {rule.rule!r} at {prefix}")
        try:
            holds = check(target)
        except (KeyError, TypeError, ZeroDivisionError):
            continue
        if not holds:
            errors.append(FieldError(rule.report_path, rule.message))
    return errors


def validation_errors(doc: Any) -> list[FieldError]:
    """Every problem with ``doc`` after defaulting; empty when it is a valid BrainCluster."""
    if not isinstance(doc, Mapping):
        return [FieldError("", f"a BrainCluster must be a mapping, got {type(doc).__name__}")]
    defaulted = apply_defaults(doc)
    errors = _envelope_errors(defaulted)
    checked = {k: v for k, v in defaulted.items() if k not in ("metadata", "status")}
    errors.extend(_unknown_field_errors(checked, _root(), ()))
    schema_errors = _schema_errors(defaulted)
    errors.extend(schema_errors)
    errors.extend(_rule_errors(defaulted, schema_errors))
    unique = dict.fromkeys(errors)  # the envelope and the schema may both flag one field
    return sorted(unique, key=lambda e: (e.path, e.message))


# --------------------------------------------------------------------------------------------
# Typed views


@dataclass(frozen=True)
class RouterSpec:
    """spec.router. ``resources`` is a Kubernetes ResourceRequirements dict (read-only)."""

    image: str
    port: int
    resources: dict[str, Any]


@dataclass(frozen=True)
class RaftSpec:
    """spec.pfc.raft."""

    heartbeat_interval_seconds: float
    election_timeout_seconds: float


@dataclass(frozen=True)
class PFCModelSpec:
    """spec.pfc.model."""

    size: int
    num_modules: int
    n_heads: int
    time_steps: int


@dataclass(frozen=True)
class StorageSpec:
    """spec.pfc.storage (the Raft journal volume)."""

    size: str
    ephemeral: bool
    storage_class_name: str | None = None


@dataclass(frozen=True)
class PFCSpec:
    """spec.pfc."""

    replicas: int
    decision_rate_hz: float
    raft_port: int
    raft: RaftSpec
    model: PFCModelSpec
    storage: StorageSpec
    resources: dict[str, Any]


@dataclass(frozen=True)
class VisionModelSpec:
    """spec.vision.model."""

    size: int
    time_steps: int


@dataclass(frozen=True)
class VisionSpec:
    """spec.vision."""

    replicas: int
    model: VisionModelSpec
    resources: dict[str, Any]


@dataclass(frozen=True)
class HeartbeatSpec:
    """spec.heartbeat."""

    interval_seconds: float
    timeout_seconds: float
    cleanup_seconds: float
    startup_grace_seconds: float


@dataclass(frozen=True)
class BrainClusterSpec:
    """A validated, defaulted BrainCluster; ``raw`` is the defaulted document itself."""

    name: str
    namespace: str
    generation: int
    image: str
    image_pull_policy: str
    seed: int
    router: RouterSpec
    pfc: PFCSpec
    vision: VisionSpec
    heartbeat: HeartbeatSpec
    raw: dict[str, Any] = field(compare=False, repr=False)

    def pfc_node_ids(self) -> list[str]:
        """Node ids of the desired PFC members: pfc-0 … pfc-(n-1)."""
        return [f"pfc-{i}" for i in range(self.pfc.replicas)]

    def vision_node_ids(self) -> list[str]:
        """Node ids of the desired Vision members: vision-0 … vision-(n-1)."""
        return [f"vision-{i}" for i in range(self.vision.replicas)]

    def node_ids(self) -> list[str]:
        """Every desired node id, PFC first."""
        return self.pfc_node_ids() + self.vision_node_ids()


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _from_camel(cls: type, data: Mapping[str, Any]) -> Any:
    """Build a spec dataclass from its camelCase section; nested dataclasses recurse."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in fields(cls):
        raw = data.get(_camel(f.name))
        hint = hints[f.name]
        if is_dataclass(hint):
            values[f.name] = _from_camel(hint, raw)
        elif hint is float:
            values[f.name] = float(raw)
        elif hint is int:
            values[f.name] = int(raw)
        else:
            values[f.name] = copy.deepcopy(raw)
    return cls(**values)


def validate(doc: Mapping[str, Any]) -> BrainClusterSpec:
    """Default and validate ``doc`` like the API server; raises SpecError listing every error."""
    errors = validation_errors(doc)
    if errors:
        raise SpecError(errors)
    defaulted = apply_defaults(doc)
    metadata = defaulted["metadata"]
    spec = defaulted["spec"]
    sections = {
        name: _from_camel(cls, spec[name])
        for name, cls in (
            ("router", RouterSpec),
            ("pfc", PFCSpec),
            ("vision", VisionSpec),
            ("heartbeat", HeartbeatSpec),
        )
    }
    return BrainClusterSpec(
        name=metadata["name"],
        namespace=metadata.get("namespace") or DEFAULT_NAMESPACE,
        # The API server starts generations at 1; a local file is its first generation.
        generation=int(metadata.get("generation") or 1),
        image=spec["image"],
        image_pull_policy=spec["imagePullPolicy"],
        seed=int(spec["seed"]),
        raw=defaulted,
        **sections,
    )


_WHITESPACE = re.compile(r"\s+")


def load_file(path: str | os.PathLike[str]) -> BrainClusterSpec:
    """Read, default and validate a BrainCluster YAML file; every failure is a SpecError."""
    name = os.fspath(path)
    try:
        text = Path(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{name}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{name}: cannot read: {exc}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"{name}: invalid YAML{where}: {_WHITESPACE.sub(' ', problem)}") from None
    if doc is None:
        raise SpecError(f"{name}: empty file; expected a BrainCluster resource")
    if not isinstance(doc, dict):
        raise SpecError(f"{name}: expected a BrainCluster mapping, got a YAML {type(doc).__name__}")
    return validate(doc)
