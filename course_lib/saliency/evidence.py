"""Dabkowski and Gal's saliency objective: remove the evidence a mask leaves out, and score the mask.

A mask ``M`` (B, H, W) in [0, 1] keeps the image where it is 1. Evidence removal

    Phi(X, M) = X * M + A * (1 - M)

replaces the rest by an alternative image ``A``, drawn afresh at each call so that
a mask cannot learn to exploit one fixed replacement: half of the images get a
strong Gaussian blur of themselves (the paper's sigma 10 at 224 px, scaled to the
image size), the others a random constant colour plus Gaussian noise. Every random
draw comes from a ``torch.Generator`` the caller owns.

The objective of a mask for class ``c`` of a black-box classifier ``f`` is

    L(M) = l1 TV(M) + l2 AV(M) - log f_c(Phi(X, M)) + l3 f_c(Phi(X, 1 - M)) ** l4

with TV the sum of squared differences of neighbouring mask values, AV the mask's
mean and ``f_c`` the softmax probability of ``c``: the preserved region alone should
convince the classifier (smallest sufficient region), and the image without it
should not (smallest destroying region), with a small and smooth mask.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from ..data.scenes import gaussian_blurred as blurred


def total_variation(mask: torch.Tensor) -> torch.Tensor:
    """Sum of squared differences of vertically and horizontally neighbouring values: (B, H, W) -> (B,)."""
    _check_mask(mask)
    return ((mask[:, 1:, :] - mask[:, :-1, :]) ** 2).sum((1, 2)) + ((mask[:, :, 1:] - mask[:, :, :-1]) ** 2).sum((1, 2))


def average_area(mask: torch.Tensor) -> torch.Tensor:
    """The mask's mean value, the share of the image it keeps: (B, H, W) -> (B,)."""
    _check_mask(mask)
    return mask.mean((1, 2))


def _check_mask(mask: torch.Tensor) -> None:
    if mask.ndim != 3:
        raise ValueError(f"masks must be (B, H, W), got shape {tuple(mask.shape)}")


def alternative_images(x: torch.Tensor, generator: torch.Generator, blur_sigma_224: float = 10.0,
                       noise: float = 0.2, colours: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """One alternative image per image of ``x`` (B, C, H, W) in [0, 1], drawn with ``generator``.

    Each image is, with probability one half, ``x`` blurred with sigma
    ``blur_sigma_224 * W / 224`` pixels; otherwise a random constant colour
    (each channel uniform in ``colours``) plus Gaussian noise of std ``noise``,
    clipped to [0, 1].
    """
    b, c, h, w = x.shape
    draw = dict(generator=generator, device=generator.device)
    use_blur = (torch.rand(b, **draw) < 0.5).to(x.device)
    low, high = colours
    colour = (low + (high - low) * torch.rand(b, c, 1, 1, **draw)).to(x)
    flat = (colour + noise * torch.randn(b, c, h, w, **draw).to(x)).clamp(0, 1)
    soft = blurred(x, blur_sigma_224 * w / 224)
    return torch.where(use_blur[:, None, None, None], soft, flat)


def remove_evidence(x: torch.Tensor, mask: torch.Tensor, alternative: torch.Tensor) -> torch.Tensor:
    """Phi(X, M) = X * M + A * (1 - M): ``x`` (B, C, H, W), ``mask`` (B, H, W) in [0, 1], ``alternative`` like ``x``."""
    if mask.shape != (x.shape[0], *x.shape[2:]):
        raise ValueError(f"the mask must be (B, H, W) = {(x.shape[0], *x.shape[2:])} for images "
                         f"{tuple(x.shape)}; got {tuple(mask.shape)}")
    keep = mask[:, None]
    return x * keep + alternative * (1 - keep)


@dataclass(frozen=True)
class SaliencyObjective:
    """Dabkowski and Gal's L(M) per image (B,): ``l1`` TV + ``l2`` AV - log f_c(preserved) + ``l3`` f_c(destroyed) ** ``l4``.

    The defaults are the paper's ImageNet values. ``classifier`` maps pixels to
    logits; only its outputs (and their gradients) are used.
    """

    l1: float = 10.0
    l2: float = 1e-3
    l3: float = 5.0
    l4: float = 0.3
    blur_sigma_224: float = 10.0

    def area_loss(self, mask: torch.Tensor) -> torch.Tensor:
        """The area term alone, ``l2`` AV(M) per image (B,): all a fake class selector is trained with."""
        return self.l2 * average_area(mask)

    def terms(self, classifier: nn.Module, x: torch.Tensor, mask: torch.Tensor, y: torch.Tensor,
              generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Each term of L per image (B,): ``tv``, ``area``, ``preserve`` (-log p), ``destroy`` (p ** l4), and ``loss``;
        and ``logits`` (2B, K), the classifier's on the kept images, then on the removed ones."""
        y = torch.as_tensor(y, device=x.device)
        alternative = alternative_images(x, generator, self.blur_sigma_224)
        both = torch.cat([remove_evidence(x, mask, alternative), remove_evidence(x, 1 - mask, alternative)])
        logits = classifier(both).float()
        log_p = torch.log_softmax(logits, 1)
        if y.min() < 0 or y.max() >= log_p.shape[1]:
            raise ValueError(f"class indices must lie in [0, {log_p.shape[1] - 1}] for this classifier, "
                             f"got {y.tolist()}")
        index = torch.cat([y, y])[:, None]
        log_p = log_p.gather(1, index)[:, 0]
        b = len(x)
        terms = {"tv": total_variation(mask), "area": average_area(mask), "preserve": -log_p[:b],
                 "destroy": log_p[b:].exp() ** self.l4}
        terms["loss"] = (self.l1 * terms["tv"] + self.l2 * terms["area"] + terms["preserve"]
                         + self.l3 * terms["destroy"])
        terms["logits"] = logits
        return terms
