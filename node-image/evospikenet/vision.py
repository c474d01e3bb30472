"""The Vision node's spiking encoder: stimulus frame -> 512-wide spike-rate feature vector.

A Vision node answers a PFC feature request ``{task_id, seed}`` by rendering the stimulus for
that task and encoding it (:meth:`VisualModule.encode`). The frame is a pure function of
``(task_id, seed)`` so that every Vision node in the pool, and any replacement of one, gives
the PFC the same features for the same task.
"""

from __future__ import annotations

import operator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import skip_init

from evospikenet.lif import LIF, SpikingModel, positive_int

#: Channels of the two conv stages and the pooled grid fed to the projection.
_CONV1_CHANNELS = 8
_CONV2_CHANNELS = 16
_POOLED_GRID = 4
_MIN_IMAGE_SIZE = 4

#: Initial gains (see SpikingModel.seeded), chosen so that typical frames make a good share
#: of each layer fire at intermediate rates instead of all-silent or all-saturated.
_CONV1_GAIN = 3.0
_CONV2_GAIN = 3.0
_PROJECT_GAIN = 3.0
_FEATURE_GAIN = 2.0

_STIMULUS_KINDS = ("bars", "strokes", "arc")


class VisualModule(SpikingModel):
    """LIF spiking encoder for feature vectors and image batches (inference only).

    ``forward`` takes either feature vectors ``(..., size)`` -- driven through one LIF layer
    -- or images ``(B, in_channels, H, W)`` -- through conv -> LIF -> max-pool -> conv -> LIF
    -> average-pool -> linear -> LIF. Because a frame is static, the first conv runs once
    and its output is held as a constant current; the later stages see each step's spikes.
    The result is spike rates in [0, 1].
    """

    def __init__(
        self,
        size: int = 512,
        time_steps: int = 10,
        in_channels: int = 1,
        image_size: int = 28,
        beta: float = 0.9,
        threshold: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        self.size = positive_int(size, "size")
        self.time_steps = positive_int(time_steps, "time_steps")
        self.in_channels = positive_int(in_channels, "in_channels")
        self.image_size = positive_int(image_size, "image_size")
        if self.image_size < _MIN_IMAGE_SIZE:
            raise ValueError(f"image_size must be >= {_MIN_IMAGE_SIZE}, got {image_size}")
        self.lif = LIF(beta, threshold)
        self.conv1 = self.seeded(
            skip_init(nn.Conv2d, self.in_channels, _CONV1_CHANNELS, 3, padding=1), _CONV1_GAIN
        )
        self.conv2 = self.seeded(
            skip_init(nn.Conv2d, _CONV1_CHANNELS, _CONV2_CHANNELS, 3, padding=1), _CONV2_GAIN
        )
        self.project = self.seeded(
            skip_init(nn.Linear, _CONV2_CHANNELS * _POOLED_GRID**2, self.size), _PROJECT_GAIN
        )
        self.feature_layer = self.seeded(skip_init(nn.Linear, self.size, self.size), _FEATURE_GAIN)
        self.eval()

    @torch.inference_mode()
    def forward(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Spike rates: ``(..., size)`` for feature vectors, ``(B, size)`` for images."""
        x = self.as_input(x)
        if x.dim() == 4 and x.shape[1] == self.in_channels and min(x.shape[2:]) >= 4:
            return self._encode_images(x)
        if x.dim() != 4 and x.dim() >= 1 and x.shape[-1] == self.size:
            return self.lif.run(self.feature_layer(x), self.time_steps).rates
        raise ValueError(
            f"VisualModule expects feature vectors of shape (..., {self.size}) or an image "
            f"batch (B, {self.in_channels}, H, W) with H, W >= {_MIN_IMAGE_SIZE}; "
            f"got shape {tuple(x.shape)}"
        )

    def _encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Run the conv stages for all steps at once by folding time into the batch dim."""
        steps, batch = self.time_steps, images.shape[0]
        edges = self.lif.run(self.conv1(images), steps, record=True).spikes
        pooled = F.max_pool2d(edges.flatten(0, 1), 2)
        shapes = self.lif.run(
            self.conv2(pooled).unflatten(0, (steps, batch)), steps, varying=True, record=True
        ).spikes
        grid = F.adaptive_avg_pool2d(shapes.flatten(0, 1), _POOLED_GRID).flatten(1)
        current = self.project(grid).unflatten(0, (steps, batch))
        return self.lif.run(current, steps, varying=True).rates

    def render_stimulus(self, task_id: int, seed: int) -> torch.Tensor:
        """The frame for ``task_id``: (in_channels, image_size, image_size) float32 in [0, 1]."""
        frame = synthetic_frame(task_id, seed, self.in_channels, self.image_size)
        return torch.from_numpy(frame)

    @torch.inference_mode()
    def encode(self, task_id: int, seed: int) -> np.ndarray:
        """What a Vision node replies to a feature request: float32 spike rates, shape (size,)."""
        rates = self.forward(self.render_stimulus(task_id, seed).unsqueeze(0))
        return rates[0].numpy().copy()


def synthetic_frame(task_id: int, seed: int, channels: int = 1, size: int = 28) -> np.ndarray:
    """A deterministic frame from ``(task_id, seed)`` alone: oriented bars, strokes or an arc.

    A local numpy Generator seeded with both numbers keeps the global RNGs untouched, so the
    frame cannot depend on what else ran in the process. Returns float32 ``(channels, size,
    size)`` in [0, 1].
    """
    task_id, seed = operator.index(task_id), operator.index(seed)
    if task_id < 0 or seed < 0:
        raise ValueError(f"task_id and seed must be >= 0, got task_id={task_id}, seed={seed}")
    rng = np.random.default_rng([task_id, seed])
    ys, xs = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    kind = _STIMULUS_KINDS[task_id % len(_STIMULUS_KINDS)]
    if kind == "bars":
        base = _bars(rng, xs, ys)
    elif kind == "strokes":
        base = _strokes(rng, xs, ys)
    else:
        base = _arc(rng, xs, ys)
    gains = rng.uniform(0.6, 1.0, size=(channels, 1, 1))
    noise = rng.normal(0.0, 0.03, size=(channels, size, size))
    return np.clip(gains * base + noise, 0.0, 1.0).astype(np.float32)


def _bars(rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """A square-ish grating at a random orientation, spatial frequency and phase."""
    angle = rng.uniform(0.0, np.pi)
    cycles = rng.uniform(2.0, 5.0)
    phase = rng.uniform(0.0, 2.0 * np.pi)
    along = xs * np.cos(angle) + ys * np.sin(angle)
    wave = 0.5 + 0.5 * np.cos(2.0 * np.pi * cycles * along + phase)
    return wave**3


def _strokes(rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """A pen-like polyline of 3-5 points, roughly what a handwritten digit is made of."""
    points = rng.uniform(0.15, 0.85, size=(int(rng.integers(3, 6)), 2))
    width = rng.uniform(0.05, 0.09)
    ink = np.zeros_like(xs)
    for start, end in zip(points[:-1], points[1:], strict=True):
        distance = _segment_distance(xs, ys, start, end)
        ink = np.maximum(ink, np.clip(1.0 - distance / width, 0.0, 1.0))
    return ink


def _arc(rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """A thick circular arc (a '0', 'C' or '6'-like curve) with random centre and span."""
    centre = rng.uniform(0.35, 0.65, size=2)
    radius = rng.uniform(0.18, 0.32)
    width = rng.uniform(0.04, 0.08)
    start = rng.uniform(0.0, 2.0 * np.pi)
    span = rng.uniform(np.pi, 2.0 * np.pi)
    dx, dy = xs - centre[0], ys - centre[1]
    ring = np.clip(1.0 - np.abs(np.hypot(dx, dy) - radius) / width, 0.0, 1.0)
    inside_span = np.mod(np.arctan2(dy, dx) - start, 2.0 * np.pi) <= span
    return ring * inside_span


def _segment_distance(
    xs: np.ndarray, ys: np.ndarray, start: np.ndarray, end: np.ndarray
) -> np.ndarray:
    """Distance of every pixel to the segment start-end."""
    direction = end - start
    length_sq = max(float(direction @ direction), 1e-12)
    t = np.clip(((xs - start[0]) * direction[0] + (ys - start[1]) * direction[1]) / length_sq, 0, 1)
    return np.hypot(xs - (start[0] + t * direction[0]), ys - (start[1] + t * direction[1]))
