"""A defence at inference: a preprocessing module in front of a model."""
from __future__ import annotations

from torch import nn


class Preprocessed(nn.Module):
    """``model(preprocess(x))``: pixels in [0, 1] -> logits.

    The two parts stay named children (``preprocess``, ``model``), so an
    adaptive attack can replace one of them: ``bpda(defended, "preprocess")``.
    """

    def __init__(self, preprocess: nn.Module, model: nn.Module):
        super().__init__()
        self.preprocess, self.model = preprocess, model

    def forward(self, x):
        return self.model(self.preprocess(x))
