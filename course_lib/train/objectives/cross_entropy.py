"""Cross-entropy on the batch the batch maker made (clean or adversarial)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .base import Objective, batch_accuracy


@dataclass(frozen=True)
class CrossEntropy(Objective):
    """Mean cross-entropy of ``model(batch.x)``; ``criterion`` replaces it with another (logits, y) loss."""

    criterion: nn.Module | None = None

    def __call__(self, model: nn.Module, batch) -> tuple[torch.Tensor, dict[str, float]]:
        logits = model(batch.x)
        loss = (self.criterion or F.cross_entropy)(logits, batch.y)
        return loss, {"acc": batch_accuracy(logits, batch.y)}
