"""The PFC decision engine: Vision features -> a routing decision over ``num_modules`` modules.

Pipeline per feature vector: a linear projection to ``size`` (layer-normalised, so the
working memory fires in its useful range whatever the feature scale), a LIF working-memory
layer held for ``time_steps`` steps, multi-head self-attention over the spike history
``(time_steps, size)`` (plus a learned position embedding, else the order of the steps would
be invisible), mean pooling and a linear scoring of the modules.

Entropy-modulated routing. With ``H`` the entropy of the score softmax and ``N`` the number
of modules, ``alpha = cos^2(pi * H / (2 log N))``: 1 for a certain decision (H = 0), 0 for a
uniform one (H = log N). ``alpha`` then

- scales the working-memory firing threshold by ``(0.5 + alpha)``: an uncertain engine lowers
  its threshold, so more neurons fire and more evidence reaches the attention, while a
  confident one raises it and keeps only the strongest units;
- sets the routing temperature ``1 / alpha``: ``route_probs = softmax(scores * alpha)``, so an
  uncertain decision is reported as a flatter distribution instead of a false certainty.

Design choice: ``alpha`` comes from a first, probe pass at the base threshold, and the
working-memory pass that produces the decision runs at the threshold it implies. Both passes
see only the current features, so a decision is a pure function of (weights, features). The
alternative -- carrying ``alpha`` over from the previous decision -- would make the result
depend on which PFC node made the earlier decisions, and a newly elected Raft leader would
route the same task differently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import skip_init

from evospikenet.lif import LIF, SpikingModel, positive_int

#: Smallest alpha used as an inverse temperature, so a uniform probe (alpha = 0) gives a
#: finite temperature and a uniform -- not NaN -- route distribution.
ALPHA_EPS = 1e-6

#: Initial gains (see SpikingModel.seeded). The input gain sets the normalised current, so
#: about a third of the working memory fires within ten steps; the score gain gives scores of
#: order one, so entropies span the range instead of sitting at 0 or log N.
_INPUT_GAIN = 0.6
_ATTENTION_GAIN = 1.0
_SCORE_GAIN = 3.0
_POSITION_STD = 0.1


def softmax_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of ``softmax(logits)`` along the last dim, from log-probabilities so a
    vanishing probability contributes 0, not NaN."""
    log_p = F.log_softmax(logits, dim=-1)
    return -(log_p.exp() * log_p).sum(dim=-1)


def routing_alpha(entropy: torch.Tensor, num_modules: int) -> torch.Tensor:
    """``cos^2(pi * H / (2 log N))`` with ``H`` clamped to [0, log N] (float rounding can push
    a near-uniform entropy a hair past log N)."""
    max_entropy = math.log(num_modules)
    ratio = entropy.clamp(0.0, max_entropy) / max_entropy
    return torch.cos(0.5 * math.pi * ratio).square()


@dataclass(frozen=True, slots=True)
class PFCOutput:
    """Everything one forward pass decided, batch-first.

    ``entropy`` is that of ``route_probs`` (what a decision reports next to its probs);
    ``probe_entropy`` is the ``H`` that set ``alpha``. The relations: ``alpha =
    routing_alpha(probe_entropy)``, ``threshold = base_threshold * (0.5 + alpha)``,
    ``temperature = 1 / max(alpha, ALPHA_EPS)``, ``route_probs = softmax(scores /
    temperature)``.
    """

    route_probs: torch.Tensor  # (B, num_modules), rows sum to 1
    entropy: torch.Tensor  # (B,)
    module: torch.Tensor  # (B,) long, argmax of route_probs
    spikes: torch.Tensor  # (B, time_steps, size), 0/1
    potential: torch.Tensor  # (B, size), final membrane of the decision pass
    scores: torch.Tensor  # (B, num_modules), module scores of the decision pass
    probe_entropy: torch.Tensor  # (B,)
    alpha: torch.Tensor  # (B,) in [0, 1]
    threshold: torch.Tensor  # (B,)
    temperature: torch.Tensor  # (B,)


class PFCDecisionEngine(SpikingModel):
    """Spiking working memory + attention readout that routes a task to one of N modules.

    Inference only; see the module docstring for the entropy-modulated routing.
    """

    def __init__(
        self,
        size: int = 128,
        num_modules: int = 6,
        n_heads: int = 2,
        time_steps: int = 10,
        input_size: int = 512,
        seed: int = 0,
        *,
        beta: float = 0.9,
        threshold: float = 1.0,
    ) -> None:
        super().__init__(seed)
        self.size = positive_int(size, "size")
        self.num_modules = positive_int(num_modules, "num_modules")
        self.n_heads = positive_int(n_heads, "n_heads")
        self.time_steps = positive_int(time_steps, "time_steps")
        self.input_size = positive_int(input_size, "input_size")
        if self.num_modules < 2:
            raise ValueError(f"num_modules must be >= 2 to route anything, got {num_modules}")
        if self.size % self.n_heads:
            raise ValueError(f"size ({size}) must be divisible by n_heads ({n_heads})")
        self.lif = LIF(beta, threshold)
        self.input_layer = self.seeded(
            skip_init(nn.Linear, self.input_size, self.size), _INPUT_GAIN
        )
        self.position = nn.Parameter(torch.empty(self.time_steps, self.size))
        with torch.no_grad():
            self.position.normal_(0.0, _POSITION_STD, generator=self._generator)
        self.attention = self.seeded(
            skip_init(nn.MultiheadAttention, self.size, self.n_heads, batch_first=True),
            _ATTENTION_GAIN,
        )
        self.score_layer = self.seeded(
            skip_init(nn.Linear, self.size, self.num_modules), _SCORE_GAIN
        )
        self.eval()

    @property
    def base_threshold(self) -> float:
        """The working-memory threshold before the ``(0.5 + alpha)`` modulation."""
        return self.lif.threshold

    @torch.inference_mode()
    def forward(self, features: torch.Tensor | np.ndarray) -> PFCOutput:
        """Decide for ``(input_size,)`` or ``(B, input_size)`` features (tensor or numpy)."""
        current = self._current(self._as_batch(features))
        probe_scores, _, _ = self._think(current, self.base_threshold)
        probe_entropy = softmax_entropy(probe_scores)
        alpha = routing_alpha(probe_entropy, self.num_modules)
        threshold = self.base_threshold * (0.5 + alpha)
        scores, spikes, potential = self._think(current, threshold.unsqueeze(-1))
        inverse_temperature = alpha.clamp_min(ALPHA_EPS)
        logits = scores * inverse_temperature.unsqueeze(-1)
        return PFCOutput(
            route_probs=logits.softmax(dim=-1),
            entropy=softmax_entropy(logits),
            module=logits.argmax(dim=-1),
            spikes=spikes,
            potential=potential,
            scores=scores,
            probe_entropy=probe_entropy,
            alpha=alpha,
            threshold=threshold,
            temperature=inverse_temperature.reciprocal(),
        )

    def decide(self, features: torch.Tensor | np.ndarray) -> dict[str, Any]:
        """The decision for ONE feature vector as plain Python types (ready for msgpack)."""
        batch = self._as_batch(features)
        if batch.shape[0] != 1:
            raise ValueError(
                f"decide() takes one feature vector ({self.input_size},), got a batch of "
                f"{batch.shape[0]}; use forward() for batches"
            )
        out = self.forward(batch)
        return {
            "module": int(out.module[0]),
            "probs": [float(p) for p in out.route_probs[0].tolist()],
            "entropy": float(out.entropy[0]),
        }

    def _as_batch(self, features: torch.Tensor | np.ndarray) -> torch.Tensor:
        x = self.as_input(features)
        if x.dim() == 1:
            x = x.unsqueeze(0)
        if x.dim() != 2 or x.shape[1] != self.input_size:
            raise ValueError(
                f"PFCDecisionEngine expects features of shape ({self.input_size},) or "
                f"(B, {self.input_size}); got shape {tuple(x.shape)}"
            )
        return x

    def _current(self, x: torch.Tensor) -> torch.Tensor:
        """Input current to the working memory, normalised per sample."""
        return F.layer_norm(self.input_layer(x), (self.size,))

    def _think(
        self, current: torch.Tensor, threshold: float | torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One working-memory pass at ``threshold``: module scores, spikes (B, T, size) and
        the final membrane."""
        run = self.lif.run(current, self.time_steps, record=True, threshold=threshold)
        assert run.spikes is not None  # record=True always fills it
        spikes = run.spikes.transpose(0, 1)
        tokens = spikes + self.position
        attended, _ = self.attention(tokens, tokens, tokens, need_weights=False)
        return self.score_layer(attended.mean(dim=1)), spikes, run.potential
