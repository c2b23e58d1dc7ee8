"""Training a masking model (Dabkowski and Gal): the saliency objective, and fake class selectors.

The model is a ``models.masking.MaskedBlackBox``: ``model.masking(x, selector)``
gives (B, H, W) masks, ``model.black_box`` the classifier they explain (frozen;
only its outputs and their gradients are used). For each image the selector
is its true class, or, with probability ``fake_rate``, a different class drawn
at random. A true selector is trained with the whole objective; a fake one
with the area term alone, which drives its mask towards nothing: without it
the model learns to ignore the selector and to mark whatever object is
there (the paper's section 4 remedy, at its 30%).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ...saliency.evidence import SaliencyObjective
from .base import Objective


def other_classes(y: torch.Tensor, classes: int, generator: torch.Generator) -> torch.Tensor:
    """For each label of ``y`` (B,), a class drawn uniformly from the ``classes - 1`` others."""
    shift = torch.randint(1, classes, (len(y),), generator=generator, device=generator.device)
    return (y + shift.to(y.device)) % classes


def draw_selectors(y: torch.Tensor, classes: int, fake_rate: float,
                   generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(selectors, real) for labels ``y`` (B,): each selector is ``y``, or with probability ``fake_rate`` another class.

    ``real`` (B,) bool says which selectors are the true class. A fake class
    is uniform over the ``classes - 1`` others.
    """
    real = (torch.rand(len(y), generator=generator, device=generator.device) >= fake_rate).to(y.device)
    return torch.where(real, y, other_classes(y, classes, generator)), real


@dataclass(frozen=True)
class MaskingObjective(Objective):
    """Mean over the batch of L(M) (true selectors) or the area term alone (fake ones).

    ``saliency``: ``saliency.evidence.SaliencyObjective`` (the paper) or
    ``saliency.code_objective.PublishedCodeObjective`` (the authors' code).
    Random draws (selectors, alternative images) come from a generator seeded
    with ``seed`` on the first batch. Metrics: ``area`` (true selectors' mean
    mask), ``area_fake``, ``preserve``, ``destroy`` and ``tv``.
    """

    saliency: object = field(default_factory=SaliencyObjective)
    fake_rate: float = 0.3
    seed: int = 0
    _state: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        if not 0 <= self.fake_rate < 1:
            raise ValueError(f"fake_rate must lie in [0, 1), got {self.fake_rate}")

    def generator(self, device: torch.device) -> torch.Generator:
        if "generator" not in self._state:
            self._state["generator"] = torch.Generator(device=device).manual_seed(self.seed)
        return self._state["generator"]

    def __call__(self, model: nn.Module, batch) -> tuple[torch.Tensor, dict[str, float]]:
        generator = self.generator(batch.x.device)
        selectors, real = draw_selectors(batch.y, model.masking.classes, self.fake_rate, generator)
        mask = model.masking(batch.x, selectors)
        terms = self.saliency.terms(model.black_box, batch.x, mask, selectors, generator)
        per_image = torch.where(real, terms["loss"], self.saliency.area_loss(mask))
        metrics = {"area_fake": terms["area"][~real].mean().item() if (~real).any() else float("nan")}
        for name in ("area", "preserve", "destroy", "tv"):
            metrics[name] = terms[name][real].mean().item() if real.any() else float("nan")
        return per_image.mean(), metrics
