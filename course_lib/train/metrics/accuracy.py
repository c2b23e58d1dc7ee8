"""The default evaluation: mean loss and argmax accuracy of a classifier."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn
from torch.nn import functional as F

from ..objectives.base import batch_accuracy
from .base import Metrics, forward_logits


@dataclass(frozen=True)
class Accuracy(Metrics):
    """``{"loss": mean loss, "acc": % of argmax predictions equal to y}`` of ``model(batch.x)``.

    ``loss``: ``(logits, labels) -> mean loss``; default cross-entropy.
    """

    loss: Callable | None = None
    lower_is_better = frozenset({"loss"})

    def __call__(self, model: nn.Module, batch) -> dict[str, float]:
        logits = forward_logits(model, batch.x)
        return {"loss": (self.loss or F.cross_entropy)(logits, batch.y).item(),
                "acc": batch_accuracy(logits, batch.y)}
