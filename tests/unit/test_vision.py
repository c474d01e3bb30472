"""VisualModule, plus what evospikenet.lif gives both models (the LIF rule, the seeded base)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from evospikenet.lif import LIF, SpikingModel
from evospikenet.pfc import PFCDecisionEngine
from evospikenet.vision import VisualModule, synthetic_frame

TIME_STEPS = 10


@pytest.fixture(scope="module")
def model() -> VisualModule:
    return VisualModule(time_steps=TIME_STEPS, seed=0)


def _reference_lif(currents: list[float], beta: float, threshold: float):
    """The LIF rule written out in plain Python, one neuron."""
    v, spikes = 0.0, []
    for current in currents:
        v = beta * v + current
        spike = 1.0 if v >= threshold else 0.0
        v -= spike * threshold
        spikes.append(spike)
    return spikes, v


# --- LIF helper -------------------------------------------------------------------------


def test_lif_matches_the_update_rule_by_hand() -> None:
    lif = LIF(beta=0.9, threshold=1.0)
    run = lif.run(torch.tensor([0.4]), 8, record=True)
    spikes, v = _reference_lif([0.4] * 8, 0.9, 1.0)
    assert run.spikes is not None
    assert run.spikes[:, 0].tolist() == spikes
    assert spikes[2] == 1.0  # 0.4, 0.76, 1.084: fires on the third step
    assert run.potential.item() == pytest.approx(v, abs=1e-6)
    assert run.rates.item() == pytest.approx(sum(spikes) / 8)


def test_lif_varying_current_and_per_row_threshold() -> None:
    currents = [0.9, 0.0, 1.3, 0.2, 0.7]
    lif = LIF(beta=0.8, threshold=1.0)
    sequence = torch.tensor(currents).reshape(5, 1, 1).expand(5, 2, 1).contiguous()
    thresholds = torch.tensor([[0.5], [1.5]])
    run = lif.run(sequence, 5, varying=True, record=True, threshold=thresholds)
    assert run.spikes is not None
    for row, threshold in enumerate((0.5, 1.5)):
        spikes, v = _reference_lif(currents, 0.8, threshold)
        assert run.spikes[:, row, 0].tolist() == spikes
        assert run.potential[row, 0].item() == pytest.approx(v, abs=1e-6)


def test_lif_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="beta"):
        LIF(beta=1.0)
    with pytest.raises(ValueError, match="threshold"):
        LIF(threshold=0.0)
    with pytest.raises(ValueError, match="varying"):
        LIF().run(torch.zeros(3, 4), 5, varying=True)
    with pytest.raises(ValueError, match="time_steps"):
        LIF().run(torch.zeros(4), 0)


# --- forward ----------------------------------------------------------------------------


def _assert_spike_rates(rates: torch.Tensor) -> None:
    assert rates.dtype == torch.float32
    assert float(rates.min()) >= 0.0 and float(rates.max()) <= 1.0
    counts = rates * TIME_STEPS  # a rate is a spike count over the steps
    assert torch.allclose(counts, counts.round(), atol=1e-4)


def test_feature_batch_keeps_its_shape(model: VisualModule) -> None:
    x = torch.rand(20, 512, generator=torch.Generator().manual_seed(1))
    rates = model(x)
    assert rates.shape == (20, 512)
    _assert_spike_rates(rates)
    assert 0.0 < float(rates.mean()) < 1.0  # some neurons fire, not all saturate


def test_single_feature_vector_and_numpy_input(model: VisualModule) -> None:
    x = np.random.default_rng(2).random(512, dtype=np.float32)
    rates = model(x)
    assert rates.shape == (512,)
    assert torch.equal(rates, model(torch.from_numpy(x)[None])[0])


def test_image_batch_gives_size_wide_rates(model: VisualModule) -> None:
    images = torch.stack([model.render_stimulus(task, 5) for task in range(3)])
    rates = model(images)
    assert rates.shape == (3, 512)
    _assert_spike_rates(rates)
    assert float(rates.mean()) > 0.0
    assert not torch.equal(rates[0], rates[1])  # the encoder sees the frame


def test_image_of_other_size_and_channels() -> None:
    model = VisualModule(size=64, in_channels=3, image_size=20, time_steps=TIME_STEPS, seed=4)
    frame = model.render_stimulus(7, 1)
    assert frame.shape == (3, 20, 20)
    assert model(frame[None]).shape == (1, 64)


@pytest.mark.parametrize(
    "shape",
    [(20, 100), (512, 3), (2, 3, 28, 28), (2, 1, 2, 2), ()],
    ids=["wrong-width", "transposed", "wrong-channels", "tiny-image", "scalar"],
)
def test_bad_shapes_raise_value_error_naming_expected(
    model: VisualModule, shape: tuple[int, ...]
) -> None:
    with pytest.raises(ValueError, match=r"\(\.\.\., 512\).*\(B, 1, H, W\)"):
        model(torch.zeros(shape))


def test_non_finite_input_is_refused(model: VisualModule) -> None:
    x = torch.zeros(2, 512)
    x[1, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        model(x)


# --- determinism ------------------------------------------------------------------------


def test_same_seed_same_features() -> None:
    assert np.array_equal(VisualModule(seed=11).encode(3, 9), VisualModule(seed=11).encode(3, 9))
    assert not np.array_equal(
        VisualModule(seed=11).encode(3, 9), VisualModule(seed=12).encode(3, 9)
    )


# --- the shared model base (lif.SpikingModel), for both models --------------------------

MODELS = pytest.mark.parametrize("model_cls", [VisualModule, PFCDecisionEngine])


@MODELS
def test_same_seed_same_weights(model_cls: type[SpikingModel]) -> None:
    a, b = model_cls(seed=11).state_dict(), model_cls(seed=11).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


@MODELS
def test_different_seed_different_weights(model_cls: type[SpikingModel]) -> None:
    a, b = model_cls(seed=1).state_dict(), model_cls(seed=2).state_dict()
    assert all(not torch.equal(a[k], b[k]) for k in a if k.endswith("weight"))


@MODELS
def test_construction_leaves_global_rng_alone(model_cls: type[SpikingModel]) -> None:
    before = torch.get_rng_state()
    model_cls(seed=3)
    assert torch.equal(before, torch.get_rng_state())


@MODELS
def test_communicator_is_a_plain_attribute(model_cls: type[SpikingModel]) -> None:
    model = model_cls(seed=0)
    assert model.communicator is None
    keys = model.state_dict().keys()
    network = nn.Linear(2, 2)  # even a Module must not become a submodule
    model.communicator = network
    assert model.communicator is network
    assert not any(child is network for child in model.children())
    assert model.state_dict().keys() == keys


# --- stimulus and encode ----------------------------------------------------------------


def test_render_stimulus_is_deterministic_and_in_range(model: VisualModule) -> None:
    torch.manual_seed(123)
    np.random.seed(123)
    first = model.render_stimulus(4, 42)
    torch.manual_seed(999)  # the global RNGs must not matter
    np.random.seed(999)
    second = VisualModule(seed=8).render_stimulus(4, 42)
    assert first.shape == (1, 28, 28) and first.dtype == torch.float32
    assert torch.equal(first, second)
    assert float(first.min()) >= 0.0 and float(first.max()) <= 1.0
    assert float(first.std()) > 0.05  # a picture, not a flat field


def test_render_differs_across_task_ids_and_seeds() -> None:
    frames = [synthetic_frame(task, 0) for task in range(9)]
    for i in range(len(frames)):
        for j in range(i):
            assert not np.array_equal(frames[i], frames[j]), (i, j)
    assert not np.array_equal(synthetic_frame(0, 0), synthetic_frame(0, 1))


def test_render_rejects_negative_ids() -> None:
    with pytest.raises(ValueError, match="task_id"):
        synthetic_frame(-1, 0)


def test_encode_returns_float32_features(model: VisualModule) -> None:
    features = model.encode(2, 7)
    assert isinstance(features, np.ndarray)
    assert features.shape == (512,) and features.dtype == np.float32
    assert np.array_equal(features, model(model.render_stimulus(2, 7)[None])[0].numpy())
    assert not np.array_equal(features, model.encode(3, 7))
