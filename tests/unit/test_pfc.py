"""PFCDecisionEngine: routing relations, entropy modulation, determinism, decide()."""

from __future__ import annotations

import math

import msgpack
import numpy as np
import pytest
import torch

from evospikenet.pfc import ALPHA_EPS, PFCDecisionEngine, PFCOutput, routing_alpha

N = 6


@pytest.fixture(scope="module")
def engine() -> PFCDecisionEngine:
    return PFCDecisionEngine(seed=0)


@pytest.fixture(scope="module")
def out(engine: PFCDecisionEngine) -> PFCOutput:
    features = torch.rand(16, 512, generator=torch.Generator().manual_seed(5))
    return engine(features)


# --- shapes and ranges ------------------------------------------------------------------


def test_batch_shapes(out: PFCOutput) -> None:
    assert out.route_probs.shape == (16, N)
    assert out.entropy.shape == out.alpha.shape == out.threshold.shape == (16,)
    assert out.temperature.shape == out.module.shape == (16,)
    assert out.spikes.shape == (16, 10, 128)
    assert out.potential.shape == (16, 128)
    assert out.module.dtype == torch.long


def test_single_vector_and_numpy_input(engine: PFCDecisionEngine) -> None:
    x = np.random.default_rng(1).random(512, dtype=np.float32)
    single = engine(x)
    assert single.route_probs.shape == (1, N)
    assert torch.equal(single.route_probs, engine(torch.from_numpy(x)[None]).route_probs)


def test_spikes_are_binary_and_some_fire(out: PFCOutput) -> None:
    assert set(torch.unique(out.spikes).tolist()) == {0.0, 1.0}


def test_route_probs_sum_to_one_and_module_is_argmax(out: PFCOutput) -> None:
    assert float(out.route_probs.min()) >= 0.0
    assert torch.allclose(out.route_probs.sum(-1), torch.ones(16), atol=1e-5)
    assert torch.equal(out.module, out.route_probs.argmax(-1))


def test_entropies_in_range_and_match_probs(out: PFCOutput) -> None:
    for h in (out.entropy, out.probe_entropy):
        assert float(h.min()) >= 0.0 and float(h.max()) <= math.log(N) + 1e-5
    p = out.route_probs
    assert torch.allclose(out.entropy, -(p * p.log()).sum(-1), atol=1e-5)


# --- entropy-modulated routing ----------------------------------------------------------


@pytest.mark.parametrize(
    ("entropy", "expected"),
    [
        (0.0, 1.0),
        (math.log(N) / 3, math.cos(math.pi / 6) ** 2),  # 0.75
        (math.log(N) / 2, 0.5),
        (math.log(N), 0.0),
        (math.log(N) + 0.01, 0.0),  # rounding past log N is clamped
    ],
)
def test_alpha_formula_by_hand(entropy: float, expected: float) -> None:
    alpha = routing_alpha(torch.tensor([entropy]), N)
    assert alpha.item() == pytest.approx(expected, abs=1e-6)


def test_alpha_threshold_temperature_relations(engine: PFCDecisionEngine, out: PFCOutput) -> None:
    assert float(out.alpha.min()) >= 0.0 and float(out.alpha.max()) <= 1.0
    assert torch.allclose(out.alpha, routing_alpha(out.probe_entropy, N), atol=1e-6)
    assert torch.allclose(out.threshold, engine.base_threshold * (0.5 + out.alpha), atol=1e-6)
    assert torch.allclose(out.temperature * out.alpha.clamp_min(ALPHA_EPS), torch.ones(16))
    assert torch.allclose(out.temperature, 1 / out.alpha, rtol=1e-4)
    expected = (out.scores / out.temperature[:, None]).softmax(-1)
    assert torch.allclose(out.route_probs, expected, atol=1e-6)


def test_alpha_varies_across_inputs(out: PFCOutput) -> None:
    assert float(out.alpha.max() - out.alpha.min()) > 0.05


def test_decision_pass_runs_at_the_modulated_threshold(
    engine: PFCDecisionEngine, out: PFCOutput
) -> None:
    features = torch.rand(16, 512, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        current = engine._current(features)
        run = engine.lif.run(current, 10, record=True, threshold=out.threshold[:, None])
        base = engine.lif.run(current, 10, record=True)
    assert run.spikes is not None and base.spikes is not None
    assert torch.equal(out.spikes, run.spikes.transpose(0, 1))
    assert torch.allclose(out.potential, run.potential)
    assert not torch.equal(out.spikes, base.spikes.transpose(0, 1))


def test_uniform_probe_gives_alpha_zero_without_nan() -> None:
    engine = PFCDecisionEngine(seed=0)
    with torch.no_grad():
        engine.score_layer.weight.zero_()  # every module scores the same: H = log N
    result = engine(torch.rand(3, 512))
    assert torch.allclose(result.alpha, torch.zeros(3), atol=1e-6)
    assert torch.allclose(result.threshold, torch.full((3,), 0.5 * engine.base_threshold))
    assert torch.isfinite(result.temperature).all()
    assert torch.allclose(result.route_probs, torch.full((3, N), 1 / N))
    assert not torch.isnan(result.entropy).any()


def test_confident_probe_gives_alpha_near_one() -> None:
    engine = PFCDecisionEngine(seed=0)
    with torch.no_grad():
        engine.score_layer.weight.mul_(1000.0)
    result = engine(torch.rand(3, 512, generator=torch.Generator().manual_seed(2)))
    assert float(result.alpha.min()) > 0.99
    assert torch.allclose(result.threshold, torch.full((3,), 1.5), atol=0.02)


# --- determinism and validation ---------------------------------------------------------


# Seeded weights, the untouched global RNG and the communicator slot come from the shared
# base class and are tested for both models in test_vision.py.


def test_same_seed_same_decisions_different_seed_different() -> None:
    x = torch.rand(4, 512, generator=torch.Generator().manual_seed(6))
    first, again, other = (PFCDecisionEngine(seed=s)(x) for s in (7, 7, 8))
    assert torch.equal(first.route_probs, again.route_probs)
    assert torch.equal(first.spikes, again.spikes)
    assert not torch.equal(first.route_probs, other.route_probs)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"num_modules": 1}, "num_modules"),
        ({"size": 10, "n_heads": 3}, "n_heads"),
        ({"time_steps": 0}, "time_steps"),
        ({"input_size": 0}, "input_size"),
    ],
)
def test_bad_construction_raises(kwargs: dict[str, int], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        PFCDecisionEngine(**kwargs)


@pytest.mark.parametrize("shape", [(511,), (2, 3, 512), (4, 128)])
def test_bad_feature_shape_raises(engine: PFCDecisionEngine, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"\(512,\) or \(B, 512\)"):
        engine(torch.zeros(shape))


def test_non_finite_features_are_refused(engine: PFCDecisionEngine) -> None:
    with pytest.raises(ValueError, match="NaN"):
        engine.decide(np.full(512, np.inf, dtype=np.float32))


# --- decide -----------------------------------------------------------------------------


def test_decide_returns_plain_python_types(engine: PFCDecisionEngine) -> None:
    features = np.random.default_rng(3).random(512, dtype=np.float32)
    decision = engine.decide(features)
    assert set(decision) == {"module", "probs", "entropy"}
    assert type(decision["module"]) is int and 0 <= decision["module"] < N
    assert type(decision["entropy"]) is float
    assert type(decision["probs"]) is list and len(decision["probs"]) == N
    assert all(type(p) is float for p in decision["probs"])
    assert sum(decision["probs"]) == pytest.approx(1.0, abs=1e-5)
    assert decision["module"] == int(np.argmax(decision["probs"]))
    assert msgpack.unpackb(msgpack.packb(decision)) == decision


def test_decide_matches_forward(engine: PFCDecisionEngine) -> None:
    features = torch.rand(512, generator=torch.Generator().manual_seed(4))
    decision, out = engine.decide(features), engine(features)
    assert decision["module"] == int(out.module[0])
    assert decision["entropy"] == pytest.approx(float(out.entropy[0]))


def test_decide_refuses_a_batch(engine: PFCDecisionEngine) -> None:
    with pytest.raises(ValueError, match="one feature vector"):
        engine.decide(torch.zeros(2, 512))
