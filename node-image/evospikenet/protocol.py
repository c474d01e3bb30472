"""Wire protocol of a BrainCluster: key expressions and the msgpack codec (DESIGN §4).

Every message is a msgpack map ``{"v": VERSION, "t": <type tag>, ...fields}``. Tensors travel
as ``{"dtype", "shape", "data": bytes}``. Nothing here pickles: unpickling bytes from the
network would run the sender's code. Anything malformed, truncated, oversized or of an
unknown version raises :class:`CodecError`, and only that.

This module imports neither zenoh nor torch (torch only lazily, when a torch tensor is
encoded or asked for), so the operator can use it without the model stack.
"""

from __future__ import annotations

import math
import re
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar

import msgpack
import numpy as np

VERSION = 1
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
NAMESPACE = "evospikenet"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}$")


class CodecError(ValueError):
    """A message could not be encoded or decoded; the message is to be dropped."""


def check_name(kind: str, name: str) -> str:
    """Reject names that would change the meaning of a key expression (``*``, ``/``, ``$``...)."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(
            f"invalid {kind} {name!r}: use 1-63 letters, digits, '-', '_' or '.', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True, slots=True)
class Keys:
    """The key expressions of one cluster, relative (``rel_*``) and absolute."""

    cluster: str = "default"
    namespace: str = NAMESPACE

    def __post_init__(self) -> None:
        check_name("cluster name", self.cluster)
        check_name("namespace", self.namespace)

    @property
    def prefix(self) -> str:
        return f"{self.namespace}/{self.cluster}"

    def abs(self, rel: str) -> str:
        """The absolute key for a key relative to the cluster prefix."""
        return f"{self.prefix}/{rel}"

    def rel(self, absolute: str) -> str:
        """The key relative to the cluster prefix (inverse of :meth:`abs`)."""
        head = self.prefix + "/"
        if not absolute.startswith(head):
            raise ValueError(f"key {absolute!r} is outside cluster prefix {self.prefix!r}")
        return absolute[len(head):]

    # Relative keys of DESIGN §4. Node ids are checked so that a node cannot publish into
    # another node's key space by choosing a name with wildcards or slashes.
    @staticmethod
    def alive(node_id: str = "*") -> str:
        return "alive/" + (node_id if node_id == "*" else check_name("node id", node_id))

    @staticmethod
    def heartbeat(node_id: str = "*") -> str:
        return "heartbeat/" + (node_id if node_id == "*" else check_name("node id", node_id))

    ANNOUNCE: ClassVar[str] = "discovery/announce"
    SPIKES_VISION: ClassVar[str] = "spikes/vision/features"
    DECISIONS: ClassVar[str] = "decisions"

    @staticmethod
    def vision_features(node_id: str) -> str:
        return f"vision/{check_name('node id', node_id)}/features"

    @staticmethod
    def pfc_status(node_id: str) -> str:
        return f"pfc/{check_name('node id', node_id)}/status"


# --------------------------------------------------------------------------------------------
# Tensors


_DTYPES = ("bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64")
# Looked up per message: numpy's dtype.name is slow (microseconds), a dict lookup is not.
_WIRE_DTYPE = {name: np.dtype(name).newbyteorder("<") for name in _DTYPES}
_NAME_OF = {dtype: name for name, dtype in _WIRE_DTYPE.items()}


def encode_tensor(value: Any) -> dict[str, Any]:
    """A numpy array or torch tensor as ``{dtype, shape, data}`` (C order, little endian)."""
    if not isinstance(value, np.ndarray):
        if type(value).__module__.startswith("torch"):
            value = value.detach().cpu().contiguous().numpy()
        else:
            raise CodecError(f"expected a numpy array or torch tensor, got {type(value).__name__}")
    name = _NAME_OF.get(value.dtype)
    if name is None:  # big endian or an unsupported type
        if value.dtype.name not in _WIRE_DTYPE:
            raise CodecError(f"unsupported tensor dtype {value.dtype.name!r}")
        name = value.dtype.name
        value = value.astype(_WIRE_DTYPE[name])
    if not value.flags.c_contiguous:
        value = np.ascontiguousarray(value)
    return {"dtype": name, "shape": list(value.shape), "data": value.data}


def decode_tensor(obj: Any) -> np.ndarray:
    """The inverse of :func:`encode_tensor`; a read-only array over the message bytes."""
    if not isinstance(obj, dict):
        raise CodecError("tensor must be a map with dtype, shape and data")
    dtype, shape, data = obj.get("dtype"), obj.get("shape"), obj.get("data")
    wire = _WIRE_DTYPE.get(dtype) if isinstance(dtype, str) else None
    if wire is None:
        raise CodecError(f"unsupported tensor dtype {dtype!r}")
    if type(shape) is not list or any(type(d) is not int or d < 0 for d in shape):
        raise CodecError("tensor shape must be a list of non-negative integers")
    if not isinstance(data, bytes):
        raise CodecError("tensor data must be bytes")
    count = math.prod(shape)
    if len(data) != count * wire.itemsize:
        raise CodecError(
            f"tensor data is {len(data)} bytes, shape {shape} of {dtype} needs "
            f"{count * wire.itemsize}"
        )
    array = np.frombuffer(data, dtype=wire)
    return array if len(shape) == 1 else array.reshape(shape)


def to_torch(array: np.ndarray) -> Any:
    """A torch tensor copy of a decoded array (torch imported only here)."""
    import torch

    return torch.from_numpy(np.array(array, copy=True))


# --------------------------------------------------------------------------------------------
# Messages

# A field spec is the set of exact Python types msgpack may give for it (exact, so that a
# bool is not taken for an int); ``NoneType`` in it makes the value nullable. Tensors are
# checked by their own decoder.
_NONE = type(None)
_STR = frozenset({str})
_INT = frozenset({int})
_FLOAT = frozenset({float, int})
_OPT_STR = frozenset({str, _NONE})
_OPT_MAP = frozenset({dict, _NONE})
_MAP = frozenset({dict})
_LIST = frozenset({list})
_TENSOR = frozenset({"tensor"})
_TENSOR_MAP = frozenset({"tensor_map"})


class Message:
    """Base of every wire message: a frozen dataclass with a type tag and field specs."""

    TAG: ClassVar[str]
    SPEC: ClassVar[dict[str, frozenset]]
    _names: ClassVar[tuple[str, ...]]
    _optional: ClassVar[frozenset[str]]


_REGISTRY: dict[str, type[Message]] = {}


def _message(tag: str, **spec: frozenset):
    """Register a dataclass as a wire message with its field type specs."""

    def wrap(cls):
        cls = dataclass(frozen=True, slots=True)(cls)
        cls.TAG = tag
        cls.SPEC = spec
        cls._names = tuple(f.name for f in fields(cls))
        cls._optional = frozenset(
            f.name
            for f in fields(cls)
            if f.default is not MISSING or f.default_factory is not MISSING
        )
        missing = set(cls._names) ^ set(spec)
        if missing:
            raise TypeError(f"{cls.__name__}: spec and fields differ on {sorted(missing)}")
        _REGISTRY[tag] = cls
        return cls

    return wrap


@_message(
    "heartbeat",
    node_id=_STR, role=_STR, seq=_INT, sent_at=_FLOAT, started_at=_FLOAT, host=_OPT_STR,
    pod=_OPT_STR, model_digest=_OPT_STR, raft=_OPT_MAP, extra=_MAP,
)
class Heartbeat(Message):
    """What every node publishes on ``heartbeat/<node_id>`` each heartbeat interval.

    ``started_at`` identifies the process incarnation (a restarted node has a new one);
    ``raft`` is the PFC node's Raft view: state, term, leader, commit_index.
    """

    node_id: str
    role: str
    seq: int
    sent_at: float
    started_at: float
    host: str | None = None
    pod: str | None = None
    model_digest: str | None = None
    raft: dict | None = None
    extra: dict = field(default_factory=dict)


@_message(
    "announce", node_id=_STR, role=_STR, started_at=_FLOAT, host=_OPT_STR, metadata=_MAP
)
class Announce(Message):
    """Published once on ``discovery/announce`` when a node (or observer) starts."""

    node_id: str
    role: str
    started_at: float
    host: str | None = None
    metadata: dict = field(default_factory=dict)


@_message("feature_request", task_id=_INT, seed=_INT, requester=_STR, sent_at=_FLOAT)
class FeatureRequest(Message):
    """The PFC leader asks a Vision node to encode the stimulus of ``task_id``."""

    task_id: int
    seed: int
    requester: str
    sent_at: float


@_message(
    "features", task_id=_INT, node_id=_STR, features=_TENSOR, sent_at=_FLOAT, encode_ms=_FLOAT
)
class Features(Message):
    """A Vision node's spike-feature vector for one task."""

    task_id: int
    node_id: str
    features: Any
    sent_at: float
    encode_ms: float = 0.0


@_message(
    "decision",
    task_id=_INT, module=_INT, probs=_LIST, entropy=_FLOAT, vision_node=_STR, leader=_STR,
    term=_INT, timestamps=_MAP,
)
class Decision(Message):
    """One committed PFC decision (DESIGN §3.4); ``timestamps`` holds requested/committed."""

    task_id: int
    module: int
    probs: list
    entropy: float
    vision_node: str
    leader: str
    term: int
    timestamps: dict = field(default_factory=dict)


@_message("status", node_id=_STR, data=_MAP)
class Status(Message):
    """A node's self-reported status (the reply of ``pfc/<node_id>/status``)."""

    node_id: str
    data: dict


@_message("model_state", node_id=_STR, role=_STR, digest=_STR, tensors=_TENSOR_MAP)
class ModelState(Message):
    """A node's model parameters, served to a starting replica of the same role."""

    node_id: str
    role: str
    digest: str
    tensors: dict


MESSAGE_TYPES: dict[str, type[Message]] = dict(_REGISTRY)


def to_dict(message: Message) -> dict[str, Any]:
    """A message as the plain map that goes on the wire (tensors encoded)."""
    out: dict[str, Any] = {"v": VERSION, "t": message.TAG}
    spec = message.SPEC
    for name in message._names:
        value = getattr(message, name)
        kind = spec[name]
        if kind is _TENSOR:
            value = encode_tensor(value)
        elif kind is _TENSOR_MAP:
            value = {str(k): encode_tensor(v) for k, v in value.items()}
        out[name] = value
    return out


def encode(message: Message) -> bytes:
    """Serialise a message; raises :class:`CodecError` if it cannot go on the wire."""
    try:
        data = msgpack.packb(to_dict(message), use_bin_type=True)
    except CodecError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise CodecError(f"cannot encode {type(message).__name__}: {exc}") from exc
    if len(data) > MAX_MESSAGE_BYTES:
        raise CodecError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    return data


def _reject_ext(code: int, data: bytes) -> Any:
    raise CodecError(f"msgpack extension type {code} is not part of the protocol")


def decode(data: bytes | bytearray | memoryview, expected: type[Message] | None = None) -> Any:
    """Parse and validate one message; raises :class:`CodecError` on anything unexpected.

    ``expected`` narrows the accepted type (a Heartbeat on the features key is an error).
    Unknown extra fields are ignored so that a newer sender of the same version can add some.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError(f"expected bytes, got {type(data).__name__}")
    if len(data) > MAX_MESSAGE_BYTES:
        raise CodecError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=True, ext_hook=_reject_ext)
    except CodecError:
        raise
    except Exception as exc:  # msgpack raises many types for bad input; all mean "malformed"
        raise CodecError(f"malformed msgpack: {type(exc).__name__}: {exc}") from exc
    if not isinstance(obj, dict):
        raise CodecError("message must be a msgpack map")
    version = obj.get("v")
    if type(version) is not int or version != VERSION:
        raise CodecError(f"unsupported protocol version {version!r} (expected {VERSION})")
    tag = obj.get("t")
    cls = MESSAGE_TYPES.get(tag) if isinstance(tag, str) else None
    if cls is None:
        raise CodecError(f"unknown message type {tag!r}")
    if expected is not None and cls is not expected:
        raise CodecError(f"expected {expected.TAG}, got {cls.TAG}")
    values = {}
    optional = cls._optional
    for name, accepted in cls.SPEC.items():
        value = obj.get(name, _ABSENT)
        if value is _ABSENT:
            if name in optional:
                continue
            raise CodecError(f"{cls.TAG}: missing field {name!r}")
        if accepted is _TENSOR:
            value = decode_tensor(value)
        elif accepted is _TENSOR_MAP:
            if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                raise CodecError(f"{cls.TAG}.{name}: expected a map of named tensors")
            value = {k: decode_tensor(v) for k, v in value.items()}
        elif type(value) not in accepted:
            raise CodecError(f"{cls.TAG}.{name}: unexpected {type(value).__name__}")
        values[name] = value
    return cls(**values)


_ABSENT = object()
