"""Logit pairing (Kannan et al., 2018), as Defendr trained it: adversarial (ALP) and clean (CLP)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .. import losses
from .base import Objective, batch_accuracy


@dataclass(frozen=True)
class AdversarialLogitPairing(Objective):
    """CE over each clean image and its adversarial twin + ``lam`` * MSE between their logits.

    Needs ``batch.clean``: use a batch maker that makes adversarial examples.
    """

    lam: float = 0.5

    def __call__(self, model: nn.Module, batch) -> tuple[torch.Tensor, dict[str, float]]:
        if batch.clean is None:
            raise ValueError("adversarial logit pairing needs the clean twin of each example: train with "
                             "AttackBatches(...) or StaticAugmentation(..., paired=True), not CleanBatches")
        n = len(batch.y)
        logits = model(torch.cat([batch.clean, batch.x]))  # one pass over the 2B images
        clean, adv = logits[:n], logits[n:]
        loss = losses.adversarial_logit_pairing(clean, adv, batch.y, self.lam)
        return loss, {"acc": batch_accuracy(adv, batch.y), "clean_acc": batch_accuracy(clean, batch.y)}


@dataclass(frozen=True)
class CleanLogitPairing(Objective):
    """CE + ``lam`` * MSE between the logits of random pairs (i, i + B/2) of the batch; needs even batches."""

    lam: float = 0.5
    drop_last = True  # an odd last batch cannot be paired

    def __call__(self, model: nn.Module, batch) -> tuple[torch.Tensor, dict[str, float]]:
        logits = model(batch.x)
        return losses.clean_logit_pairing(logits, batch.y, self.lam), {"acc": batch_accuracy(logits, batch.y)}
