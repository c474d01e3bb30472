"""Leaky integrate-and-fire neurons and the plumbing shared by the spiking models.

Both :class:`evospikenet.vision.VisualModule` and :class:`evospikenet.pfc.PFCDecisionEngine`
simulate LIF layers; the update rule lives here once:

    v = beta * v + input;  spike = (v >= threshold);  v -= spike * threshold

(reset by subtraction keeps the charge above threshold, so a strong input fires at a rate
proportional to its strength instead of saturating after one spike).

The models run inference only (there is no surrogate gradient), so the simulation works in
place on buffers allocated once per run. Buffers are deliberately *not* cached across calls:
a node answers Zenoh queries from several threads, and a shared scratch buffer would let two
requests overwrite each other's membrane state.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True, slots=True)
class LIFRun:
    """Result of one simulation.

    ``rates`` is the fraction of steps each neuron fired (in [0, 1]), ``potential`` the final
    membrane, ``spikes`` the per-step 0/1 history of shape ``(time_steps, *shape)`` when it was
    recorded (None otherwise: most callers only need the rates).
    """

    rates: torch.Tensor
    potential: torch.Tensor
    spikes: torch.Tensor | None


class LIF:
    """A layer-agnostic LIF population: it holds the constants, the caller brings the current.

    Not an ``nn.Module``: it has no parameters, so it stays out of ``state_dict``.
    """

    def __init__(self, beta: float = 0.9, threshold: float = 1.0) -> None:
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta must be in [0, 1) (membrane decay per step), got {beta}")
        if not threshold > 0.0:
            raise ValueError(f"threshold must be > 0, got {threshold}")
        self.beta = float(beta)
        self.threshold = float(threshold)

    def run(
        self,
        current: torch.Tensor,
        time_steps: int,
        *,
        varying: bool = False,
        record: bool = False,
        threshold: float | torch.Tensor | None = None,
    ) -> LIFRun:
        """Simulate ``time_steps`` steps from a zero membrane.

        ``current`` is one input held for every step (a static stimulus), or with
        ``varying=True`` a ``(time_steps, *shape)`` sequence, one slice per step (the output of
        an upstream spiking layer). ``threshold`` overrides the layer's own, e.g. a per-sample
        tensor broadcastable to ``shape``.
        """
        time_steps = positive_int(time_steps, "time_steps")
        if varying and current.shape[0] != time_steps:
            raise ValueError(
                f"a varying current needs {time_steps} steps in dim 0, got shape "
                f"{tuple(current.shape)}"
            )
        thr = self.threshold if threshold is None else threshold
        shape = current.shape[1:] if varying else current.shape
        v = torch.zeros(shape, dtype=current.dtype, device=current.device)
        if record:
            history = torch.empty((time_steps, *shape), dtype=v.dtype, device=v.device)
            for t in range(time_steps):
                self._step(v, current[t] if varying else current, history[t], thr)
            # One reduction at the end is cheaper than an accumulate per step.
            return LIFRun(rates=history.mean(dim=0), potential=v, spikes=history)
        rates = torch.zeros_like(v)
        spikes = torch.empty_like(v)
        for t in range(time_steps):
            self._step(v, current[t] if varying else current, spikes, thr)
            rates.add_(spikes)
        return LIFRun(rates=rates.div_(time_steps), potential=v, spikes=None)

    def _step(
        self,
        v: torch.Tensor,
        current: torch.Tensor,
        spikes: torch.Tensor,
        threshold: float | torch.Tensor,
    ) -> None:
        """One in-place update of ``v``; writes the 0/1 spikes into ``spikes``."""
        torch.add(current, v, alpha=self.beta, out=v)  # v = beta * v + current, one kernel
        torch.ge(v, threshold, out=spikes)
        if isinstance(threshold, torch.Tensor):
            v.addcmul_(spikes, threshold, value=-1.0)
        else:
            v.sub_(spikes, alpha=threshold)


class SpikingModel(nn.Module):
    """Base of the node models: seeded initialisation, input checks and a communicator slot.

    Weights come from a generator local to the instance, so two nodes built with the same
    seed hold identical models (the model digest in heartbeats can be compared) and building
    one never disturbs the process-wide RNG. Layers are created with
    ``torch.nn.utils.skip_init`` and filled by :meth:`seeded`.
    """

    #: The node's network object (e.g. a ZenohCommunicator), set by the node runtime.
    communicator: Any

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.seed = operator.index(seed)
        self._generator = torch.Generator().manual_seed(self.seed)
        self.communicator = None

    def __setattr__(self, name: str, value: Any) -> None:
        # A communicator must never become a submodule/parameter: it would land in
        # state_dict(), .to() and children(), and it is a live network session.
        if name == "communicator":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def seeded(self, layer: nn.Module, gain: float = 1.0, bias: float = 0.0) -> nn.Module:
        """Initialise every parameter of ``layer`` from the model's generator and return it.

        Weights are N(0, gain^2 / fan_in), so ``gain`` sets the typical input current a unit
        receives and with it how readily the LIF neurons behind the layer fire; biases are
        the constant ``bias``. Call order fixes the draw order, hence the weights.
        """
        with torch.no_grad():
            for param in layer.parameters():
                if param.dim() >= 2:
                    fan_in = math.prod(param.shape[1:])
                    param.normal_(0.0, gain / math.sqrt(fan_in), generator=self._generator)
                else:
                    param.fill_(bias)
        return layer

    @staticmethod
    def as_input(x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Return ``x`` as a float32 tensor, refusing NaN/inf (they would poison every output)."""
        if isinstance(x, np.ndarray) and not x.flags.writeable:
            # Decoded messages are read-only views of the network buffer; torch wants to own.
            x = np.array(x, dtype=np.float32)
        tensor = torch.as_tensor(x, dtype=torch.float32)
        if not bool(torch.isfinite(tensor).all()):
            raise ValueError("input contains NaN or infinite values")
        return tensor


def positive_int(value: int, name: str) -> int:
    """Validate a size-like argument (an int >= 1) with a message naming it."""
    value = operator.index(value)
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value
