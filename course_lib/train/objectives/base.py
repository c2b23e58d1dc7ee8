"""The base of every objective: what the engine calls on each training batch."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


def batch_accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Share of correct predictions in %: (B, K) logits and (B,) labels -> float.

    From the exact count, as ``evaluation.percent``: a float32 mean makes 950 of
    1,000 94.9999988, and the engine's epoch means would carry that error.
    """
    return 100.0 * int((logits.argmax(1) == y).sum()) / len(y)


@dataclass(frozen=True)
class Objective:
    """``objective(model, batch) -> (loss, metrics)``: a scalar loss to minimise and a dict of floats.

    The engine averages each metric over the epoch's examples and records it as
    ``train_<name>``. ``drop_last`` asks the engine to skip a short last batch.
    """

    drop_last = False

    def __call__(self, model: nn.Module, batch) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError
