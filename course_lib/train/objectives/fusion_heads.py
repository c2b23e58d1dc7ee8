"""Contextual fusion's objective: the three heads' cross-entropies, and the paper's penalty on theta_fg."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .base import Objective, batch_accuracy


def stream_features(model: nn.Module, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """The two streams' features: precomputed ones from the batch's extras, or ``model.features(batch.x)``."""
    if "object_features" in batch.extras:
        return batch.extras["object_features"], batch.extras["scene_features"]
    return model.features(batch.x)


@dataclass(frozen=True)
class FusionHeads(Objective):
    """CE(fg) + CE(bg) + CE(joint) + (``alpha`` / B) * ||theta_fg||^2 of a ``models.fusion.FusionClassifier``.

    The heads share no parameter and the streams are frozen, so the sum trains
    each head exactly as its own cross-entropy alone would. theta_fg is the
    joint head's weight block on the object features (Akumalla et al.'s
    section 3.4: the L2 penalty that shifts the joint decision towards the
    scene); ``alpha`` = 0 is plain late fusion. The paper's loss *sums* the
    cross-entropy over the N examples of a batch and adds alpha ||theta_fg||^2;
    the kit averages it, so the penalty is divided by the batch size B too:
    the same loss divided by N, and alpha keeps the paper's meaning.
    Metrics: ``acc`` (joint), ``acc_fg``, ``acc_bg``, and ``penalty`` (||theta_fg||^2).
    """

    alpha: float = 0.0

    def __post_init__(self):
        if self.alpha < 0:
            raise ValueError(f"alpha must be >= 0 (the weight of the penalty on theta_fg), got {self.alpha}")

    def __call__(self, model: nn.Module, batch) -> tuple[torch.Tensor, dict[str, float]]:
        logits = model.heads(*stream_features(model, batch))
        loss = sum(F.cross_entropy(logits[name], batch.y) for name in ("fg", "bg", "joint"))
        penalty = model.foreground_weights().pow(2).sum()
        loss = loss + self.alpha * penalty / len(batch.y)
        return loss, {"acc": batch_accuracy(logits["joint"], batch.y), "acc_fg": batch_accuracy(logits["fg"], batch.y),
                      "acc_bg": batch_accuracy(logits["bg"], batch.y), "penalty": penalty.item()}
