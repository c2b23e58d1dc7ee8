"""The saliency objective of Dabkowski and Gal's published code, beside the paper's.

The authors' code (``PiotrDabkowski/pytorch-saliency``, ``sal/saliency_model.py``
and ``sal/utils/mask.py``) trains with a loss that differs from the paper's
equation in every term:

* **preserve** and **destroy** are hinges on logits (Carlini-Wagner style)
  instead of probabilities: ``0.3 * relu(max other logit - logit_c + 1)`` (the
  preserved image must put ``c`` on top by a margin of 1) and
  ``relu(logit_c - max other logit + 5)`` (the destroyed one must put another
  class on top by 5);
* the **area** term is ``8 * mean((M + 0.0005) ** 0.3)``: a power below 1
  rewards masks that are exactly 0 far more than the mean does;
* **smoothness** is ``0.005 * (TV + 0.3 * sum of squared border values) / 2``;
* the **alternative image** is Gaussian noise (std 0.11) plus a random colour
  (uniform within 0.66 of the middle) in the code's [-1, 1] image units, i.e.
  std 0.055 and colours in [0.335, 0.665] in the kit's pixels in [0, 1], or
  half the time a blur of sigma 11 at 224 px.

``PublishedCodeObjective`` has ``SaliencyObjective``'s interface (``terms`` and
``area_loss``), so the iterative method and the masking model's training take
either. Neither the code's extra noise on preserved images (std 0.03) nor its
two training phases are reproduced; the chapter names both.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .evidence import _check_mask, alternative_images, remove_evidence, total_variation


def border_energy(mask: torch.Tensor) -> torch.Tensor:
    """Sum of squared mask values on the image's four borders (corners twice, as the code does): (B, H, W) -> (B,)."""
    _check_mask(mask)
    return (mask[:, 0] ** 2 + mask[:, -1] ** 2).sum(1) + (mask[:, :, 0] ** 2 + mask[:, :, -1] ** 2).sum(1)


def logit_margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """logit of ``y`` minus the largest other logit: (B, K), (B,) -> (B,); positive when ``y`` wins."""
    own = logits.gather(1, y[:, None])[:, 0]
    others = logits.scatter(1, y[:, None], float("-inf"))
    return own - others.amax(1)


@dataclass(frozen=True)
class PublishedCodeObjective:
    """The code's loss per image (B,): destroy hinge + 0.3 preserve hinge + 8 area ** 0.3 + 0.005 smoothness.

    Returns the same keys as ``SaliencyObjective.terms``: ``tv`` (with the
    border term), ``area`` (the plain mean, for reporting), ``preserve``,
    ``destroy``, ``loss`` and ``logits`` (on the kept, then the removed images).
    """

    area_weight: float = 8.0
    area_power: float = 0.3
    smoothness_weight: float = 0.005
    border_weight: float = 0.3
    preserve_weight: float = 0.3
    preserve_margin: float = 1.0
    destroy_margin: float = 5.0
    blur_sigma_224: float = 11.0
    noise: float = 0.055
    colours: tuple[float, float] = (0.335, 0.665)

    def area_loss(self, mask: torch.Tensor) -> torch.Tensor:
        """``8 * mean((M + 0.0005) ** 0.3)`` per image (B,)."""
        _check_mask(mask)
        return self.area_weight * ((mask + 0.0005) ** self.area_power).mean((1, 2))

    def terms(self, classifier: nn.Module, x: torch.Tensor, mask: torch.Tensor, y: torch.Tensor,
              generator: torch.Generator) -> dict[str, torch.Tensor]:
        y = torch.as_tensor(y, device=x.device)
        alternative = alternative_images(x, generator, self.blur_sigma_224, self.noise, self.colours)
        both = torch.cat([remove_evidence(x, mask, alternative), remove_evidence(x, 1 - mask, alternative)])
        logits = classifier(both).float()
        if y.min() < 0 or y.max() >= logits.shape[1]:
            raise ValueError(f"class indices must lie in [0, {logits.shape[1] - 1}] for this classifier, "
                             f"got {y.tolist()}")
        b = len(x)
        margin = logit_margin(logits, torch.cat([y, y]).long())
        smooth = (total_variation(mask) + self.border_weight * border_energy(mask)) / 2
        terms = {"tv": smooth, "area": mask.mean((1, 2)),
                 "preserve": torch.relu(self.preserve_margin - margin[:b]),
                 "destroy": torch.relu(margin[b:] + self.destroy_margin)}
        terms["loss"] = (terms["destroy"] + self.preserve_weight * terms["preserve"] + self.area_loss(mask)
                         + self.smoothness_weight * terms["tv"])
        terms["logits"] = logits
        return terms
