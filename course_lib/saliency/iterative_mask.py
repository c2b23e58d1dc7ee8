"""Iterative saliency masks: Dabkowski and Gal's objective optimised for one image and class at a time.

The slow baseline of the real-time saliency chapter, in the manner of Fong and
Vedaldi: a low-resolution mask (``mask_size`` x ``mask_size`` logits) is
upsampled bilinearly to the image and squashed into [0, 1] by a sigmoid, and Adam
lowers ``SaliencyObjective``'s L(M) for ``steps`` steps. Upsampling from a coarse
grid is what keeps the mask smooth (it cannot draw pixel-sized adversarial
patterns), beside the objective's own TV term. The images of a batch are
optimised together but independently: the loss is the sum of their own losses.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from ..model_state import check_batch, frozen_eval
from .evidence import SaliencyObjective


@dataclass(frozen=True)
class IterativeMask:
    """A saliency method: ``IterativeMask()(model, x, y)`` -> (B, H, W) masks in [0, 1] (1: keep).

    Works on any classifier of pixels and any image size (masks are
    ``mask_size`` x ``mask_size`` upsampled). ``steps``: 300 by default, the
    range where masks stopped changing in the measurements this chapter started
    from (200-300 Adam steps on a 28 x 28 mask of a 224 px photo); at least 100.
    The model is left as it was found (mode, gradients); random draws of the
    evidence removal come from a generator seeded with ``seed``, so a call is
    repeatable.
    """

    objective: SaliencyObjective = field(default_factory=SaliencyObjective)
    mask_size: int = 28
    steps: int = 300
    lr: float = 0.1
    seed: int = 0

    def __post_init__(self):
        if self.steps < 1 or self.mask_size < 1 or self.lr <= 0:
            raise ValueError(f"IterativeMask needs steps >= 1, mask_size >= 1 and lr > 0; got steps={self.steps}, "
                             f"mask_size={self.mask_size}, lr={self.lr}")

    def __call__(self, model: nn.Module, x: torch.Tensor, y) -> torch.Tensor:
        y = check_batch(x, y).to(x.device)
        height, width = x.shape[-2:]
        logits = torch.zeros(len(x), 1, self.mask_size, self.mask_size, device=x.device, requires_grad=True)
        optimiser = torch.optim.Adam([logits], lr=self.lr)
        generator = torch.Generator(device=x.device).manual_seed(self.seed)
        x = x.detach()
        with frozen_eval(model):
            for _ in range(self.steps):
                mask = self.mask(logits, height, width)
                loss = self.objective.terms(model, x, mask, y, generator)["loss"].sum()
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
        return self.mask(logits, height, width).detach()

    @staticmethod
    def mask(logits: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """(B, 1, m, m) logits -> (B, H, W) mask in [0, 1]: bilinear upsampling, then a sigmoid."""
        up = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
        return torch.sigmoid(up)[:, 0]
