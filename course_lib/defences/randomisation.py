"""Randomised inference (Xie et al., 2018): random resizing and padding in front of a model."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class RandomResizePad(nn.Module):
    """(B, C, S, S) -> (B, C, S, S): resize to a random side in [``low``, S], zero-pad at a random offset.

    Xie et al. resize 299-pixel images to a random side in [299, 331) and pad to
    331; a classifier with a fixed input size (the MNIST CNN takes 28x28) keeps
    the proportion the other way round: shrink to [``low``, S] and pad back to S.
    One draw per batch, as in Xie et al.'s implementation; a new draw at every
    forward pass, in eval mode too. ``generator`` makes the draws repeatable.
    """

    def __init__(self, size: int = 28, low: int = 25, generator: torch.Generator | None = None):
        super().__init__()
        if not 0 < low <= size:
            raise ValueError(f"need 0 < low <= size, got low={low}, size={size}")
        self.size, self.low, self.generator = size, low, generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.size, self.size):
            raise ValueError(f"RandomResizePad expects {self.size}x{self.size} images, got {tuple(x.shape[-2:])}")
        side = int(torch.randint(self.low, self.size + 1, (1,), generator=self.generator))
        top, left = (int(v) for v in torch.randint(0, self.size - side + 1, (2,), generator=self.generator))
        small = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
        return F.pad(small, (left, self.size - side - left, top, self.size - side - top))


class Randomised(nn.Module):
    """``model(transform(x))``, averaged over ``samples`` random draws: log of the mean probabilities.

    With ``samples=1`` each forward pass is one random draw (what an attacker
    who ignores the randomness sees); more samples smooth the prediction.
    """

    def __init__(self, model: nn.Module, transform: nn.Module, samples: int = 1):
        super().__init__()
        if samples < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        self.model, self.transform, self.samples = model, transform, samples

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.samples == 1:
            return self.model(self.transform(x))
        probs = torch.stack([torch.softmax(self.model(self.transform(x)), dim=1) for _ in range(self.samples)])
        return probs.mean(0).clamp_min(1e-12).log()
