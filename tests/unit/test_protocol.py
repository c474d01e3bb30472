"""The msgpack codec and key expressions (pure, no sockets)."""

from __future__ import annotations

import dataclasses

import msgpack
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from evospikenet import protocol
from evospikenet.protocol import (
    MAX_MESSAGE_BYTES,
    Announce,
    CodecError,
    Decision,
    FeatureRequest,
    Features,
    Heartbeat,
    Keys,
    ModelState,
    Status,
    decode,
    encode,
)

SAMPLES = [
    Heartbeat(
        node_id="pfc-0", role="pfc", seq=7, sent_at=1.5, started_at=1.0, host="h", pod="p-0",
        model_digest="abc", raft={"state": "leader", "term": 3, "leader": "pfc-0",
                                  "commit_index": 9}, extra={"decisions": 4},
    ),
    Heartbeat(node_id="vision-1", role="vision", seq=0, sent_at=2.0, started_at=2.0),
    Announce(node_id="vision-0", role="vision", started_at=3.0, host="h", metadata={"pid": 1}),
    FeatureRequest(task_id=12, seed=5, requester="pfc-1", sent_at=4.0),
    Decision(
        task_id=12, module=3, probs=[0.1, 0.9], entropy=0.3, vision_node="vision-0",
        leader="pfc-1", term=2, timestamps={"requested": 1.0, "committed": 1.02},
    ),
    Status(node_id="pfc-2", data={"state": "follower"}),
]
STATE = ModelState(
    node_id="vision-0", role="vision", digest="d",
    tensors={"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.zeros(3, np.int64)},
)


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_messages_round_trip(message):
    assert decode(encode(message)) == message


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_every_message_carries_version_and_type(message):
    obj = msgpack.unpackb(encode(message))
    assert obj["v"] == protocol.VERSION and obj["t"] == message.TAG


@pytest.mark.parametrize(
    "dtype", ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64"]
)
def test_numpy_tensors_round_trip_bit_exact(dtype):
    rng = np.random.default_rng(1)
    arr = (rng.standard_normal((3, 5, 7)) * 100).astype(dtype)
    out = decode(encode(Features(task_id=1, node_id="v", features=arr, sent_at=0.0))).features
    assert out.dtype == arr.dtype and out.shape == arr.shape
    assert out.tobytes() == arr.tobytes()


def test_torch_tensors_round_trip_bit_exact():
    tensor = torch.randn(2, 512, generator=torch.Generator().manual_seed(3))
    tensor[0, 0] = float("nan")
    out = decode(encode(Features(task_id=1, node_id="v", features=tensor, sent_at=0.0)))
    assert out.features.tobytes() == tensor.numpy().tobytes()
    back = protocol.to_torch(out.features)
    assert back.dtype == torch.float32 and back.shape == (2, 512)
    assert back.numpy().tobytes() == tensor.numpy().tobytes()


def test_model_state_round_trips_named_tensors_bit_exact():
    out = decode(encode(STATE))
    assert set(out.tensors) == {"w", "b"}
    for name, arr in STATE.tensors.items():
        assert out.tensors[name].dtype == arr.dtype and out.tensors[name].tobytes() == arr.tobytes()
    bad = {**protocol.to_dict(STATE), "tensors": {"w": [1]}}
    with pytest.raises(CodecError):
        decode(msgpack.packb(bad, use_bin_type=True))
    with pytest.raises(CodecError):
        decode(msgpack.packb({**protocol.to_dict(STATE), "tensors": {1: {}}},
                             use_bin_type=True, strict_types=False))


def test_big_endian_and_non_contiguous_arrays_are_normalised():
    arr = np.arange(12, dtype=">f8").reshape(3, 4)[:, ::2]
    out = decode(encode(Features(task_id=0, node_id="v", features=arr, sent_at=0.0))).features
    np.testing.assert_array_equal(out, arr)


def features_map(**overrides):
    base = protocol.to_dict(
        Features(task_id=1, node_id="v", features=np.zeros(4, np.float32), sent_at=0.0)
    )
    base.update(overrides)
    return msgpack.packb(base, use_bin_type=True)


@pytest.mark.parametrize(
    "payload, fragment",
    [
        (b"", "malformed"),
        (b"\xc1", "malformed"),
        (encode(SAMPLES[0])[:-3], "malformed"),
        (msgpack.packb([1, 2, 3]), "must be a msgpack map"),
        (features_map(v=2), "version 2"),
        (features_map(v=None), "version None"),
        (features_map(t="nonsense"), "unknown message type"),
        (features_map(task_id="1"), "features.task_id"),
        (features_map(task_id=True), "features.task_id"),
        (features_map(sent_at=None), "features.sent_at"),
        (features_map(features={"dtype": "float32", "shape": [5], "data": b"\0" * 16}), "needs 20"),
        (features_map(features={"dtype": "object", "shape": [1], "data": b"\0"}), "dtype"),
        (features_map(features={"dtype": "uint8", "shape": [-1], "data": b""}), "shape"),
        (features_map(features=[1, 2]), "tensor must be a map"),
        (msgpack.packb({"v": 1, "t": "features", "task_id": 1}), "missing field"),
        (msgpack.packb(msgpack.ExtType(5, b"x")), "extension"),
        (b"\x00" * (MAX_MESSAGE_BYTES + 1), "exceeds"),
    ],
)
def test_bad_messages_raise_codec_error(payload, fragment):
    with pytest.raises(CodecError, match=fragment):
        decode(payload)


def test_expected_type_is_enforced():
    with pytest.raises(CodecError, match="expected features, got heartbeat"):
        decode(encode(SAMPLES[0]), Features)


def test_unknown_extra_fields_are_ignored():
    assert decode(features_map(future_field=1)).task_id == 1


def test_oversized_messages_are_refused_on_encode():
    big = np.zeros(MAX_MESSAGE_BYTES // 4 + 1, np.float32)
    with pytest.raises(CodecError, match="exceeds"):
        encode(Features(task_id=0, node_id="v", features=big, sent_at=0.0))


def test_unencodable_values_raise_codec_error():
    with pytest.raises(CodecError):
        encode(Status(node_id="x", data={"obj": object()}))
    with pytest.raises(CodecError, match="numpy array or torch tensor"):
        encode(Features(task_id=0, node_id="v", features=[1.0, 2.0], sent_at=0.0))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=512))
def test_fuzzed_bytes_raise_only_codec_error(data):
    try:
        message = decode(data)
    except CodecError:
        return
    assert type(message) in protocol.MESSAGE_TYPES.values()


PLAIN = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(
        max_size=8) | st.binary(max_size=16),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                               max_size=4),
    max_leaves=12,
)


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(SAMPLES),
    st.dictionaries(st.sampled_from(["v", "t", "task_id", "node_id", "features", "seq", "raft",
                                     "probs", "data", "sent_at", "role"]), PLAIN, max_size=4),
)
def test_fuzzed_fields_of_valid_messages_raise_only_codec_error(message, overrides):
    obj = {**protocol.to_dict(message), **overrides}
    try:
        decoded = decode(msgpack.packb(obj, use_bin_type=True))
    except CodecError:
        return
    assert isinstance(decoded, protocol.Message)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SAMPLES), st.data())
def test_truncated_or_flipped_valid_messages_raise_only_codec_error(message, data):
    raw = bytearray(encode(message))
    cut = data.draw(st.integers(0, len(raw) - 1))
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] ^= data.draw(st.integers(1, 255))
    for candidate in (bytes(raw[:cut]), bytes(raw)):
        try:
            decoded = decode(candidate)
        except CodecError:
            continue  # the one exception the decoder may raise
        assert type(decoded) in protocol.MESSAGE_TYPES.values()


def test_keys_follow_the_protocol_table():
    keys = Keys("brain")
    assert keys.prefix == "evospikenet/brain"
    assert keys.abs(Keys.alive("pfc-0")) == "evospikenet/brain/alive/pfc-0"
    assert keys.abs(Keys.heartbeat("vision-1")) == "evospikenet/brain/heartbeat/vision-1"
    assert keys.abs(Keys.heartbeat()) == "evospikenet/brain/heartbeat/*"
    assert keys.abs(Keys.ANNOUNCE) == "evospikenet/brain/discovery/announce"
    assert keys.abs(Keys.vision_features("v0")) == "evospikenet/brain/vision/v0/features"
    assert keys.abs(Keys.SPIKES_VISION) == "evospikenet/brain/spikes/vision/features"
    assert keys.abs(Keys.DECISIONS) == "evospikenet/brain/decisions"
    assert keys.abs(Keys.pfc_status("pfc-2")) == "evospikenet/brain/pfc/pfc-2/status"
    assert keys.rel("evospikenet/brain/alive/x") == "alive/x"
    with pytest.raises(ValueError):
        keys.rel("evospikenet/other/alive/x")


@pytest.mark.parametrize("bad", ["", "a/b", "*", "a*", "x$", "-lead", "a b", "n" * 64])
def test_names_that_would_change_a_key_expression_are_rejected(bad):
    with pytest.raises(ValueError, match="invalid"):
        Keys(bad)
    with pytest.raises(ValueError, match="invalid node id"):
        Keys.vision_features(bad)


def test_messages_are_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        SAMPLES[3].task_id = 1  # type: ignore[misc]
