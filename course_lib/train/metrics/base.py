"""The base of every metrics object: what the engine calls on each evaluation batch."""
from __future__ import annotations

import torch
from torch import nn


class Metrics:
    """``metrics(model, batch) -> {name: value}``: means over the batch's examples, as floats.

    The engine calls it in eval mode without gradients, weights each value by
    the batch's size and averages over the whole set, then records
    ``val_<name>`` and ``test_<name>``. ``lower_is_better`` names the metrics
    that improve downwards, so ``Engine.fit`` can select the best epoch on any of them.
    """

    lower_is_better: frozenset[str] = frozenset()

    def __call__(self, model: nn.Module, batch) -> dict[str, float]:
        raise NotImplementedError

    def improves(self, name: str, value: float, best: float | None) -> bool:
        """Whether ``value`` of metric ``name`` is better than ``best`` (None: nothing yet)."""
        if best is None:
            return value == value  # a NaN never counts as an improvement
        return value < best if name in self.lower_is_better else value > best

    def __repr__(self) -> str:
        return type(self).__name__


def forward_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model(x)`` as float32 (under bf16 autocast the model returns bfloat16 logits)."""
    return model(x).float()
