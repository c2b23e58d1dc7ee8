"""Clean logit squeezing (Kannan et al., 2018): cross-entropy plus a penalty on the logits' norm."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .. import losses
from .base import Objective, batch_accuracy


@dataclass(frozen=True)
class LogitSqueezing(Objective):
    """CE + ``lam`` * mean L2 norm of the logits of ``batch.x``."""

    lam: float = 0.05

    def __call__(self, model: nn.Module, batch) -> tuple[torch.Tensor, dict[str, float]]:
        logits = model(batch.x)
        return losses.logit_squeezing(logits, batch.y, self.lam), {"acc": batch_accuracy(logits, batch.y)}
