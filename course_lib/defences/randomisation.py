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
    A new draw at every forward pass, in eval mode too; ``generator`` makes the
    draws repeatable. ``per_image=False`` draws once per batch, as Xie et al.'s
    implementation does; ``True`` draws a side and an offset for each image, so
    that an accuracy over a batch averages many draws instead of riding on one.
    """

    def __init__(self, size: int = 28, low: int = 25, generator: torch.Generator | None = None,
                 per_image: bool = False):
        super().__init__()
        if not 0 < low <= size:
            raise ValueError(f"need 0 < low <= size, got low={low}, size={size}")
        self.size, self.low, self.generator, self.per_image = size, low, generator, per_image

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.size, self.size):
            raise ValueError(f"RandomResizePad expects {self.size}x{self.size} images, got {tuple(x.shape[-2:])}")
        n = len(x) if self.per_image else 1
        sides = torch.randint(self.low, self.size + 1, (n,), generator=self.generator)
        room = self.size - sides + 1  # offsets 0 .. S - side on each axis
        tops, lefts = ((torch.rand(n, generator=self.generator) * room).long() for _ in range(2))
        if not self.per_image:
            side, top, left = int(sides[0]), int(tops[0]), int(lefts[0])
            small = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
            return F.pad(small, (left, self.size - side - left, top, self.size - side - top))
        out = x.new_zeros(x.shape)
        for side in sides.unique().tolist():  # one resize per distinct side, then each image to its offset
            chosen = (sides == side).nonzero().squeeze(1).tolist()
            small = F.interpolate(x[chosen], size=(side, side), mode="bilinear", align_corners=False)
            for k, i in enumerate(chosen):
                top, left = int(tops[i]), int(lefts[i])
                out[i, :, top:top + side, left:left + side] = small[k]
        return out


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
