"""How good a masking model's masks are, on a validation or test set."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ...saliency.evidence import SaliencyObjective
from ...saliency.localisation import localisation_error
from ..objectives.masking import other_classes
from .base import Metrics


@dataclass(frozen=True)
class MaskQuality(Metrics):
    """Masks of a ``models.masking.MaskedBlackBox`` for every image's true class and for one wrong class.

    Values (means over the images): ``loss``, the saliency objective for the true
    class plus its area term for the wrong one (what training lowers; the best
    epoch's monitor); ``area`` and ``area_fake``, the masks' mean value for the
    true and the wrong class (the second should vanish); ``preserved_acc`` and
    ``destroyed_acc`` (%), the black box's accuracy on the image kept by the
    mask and on the image without it; and, when the batch carries ``boxes``,
    ``loc_error`` (%, ``saliency.localisation.localisation_error`` at 0.5).
    Random draws use a generator seeded with ``seed`` at every batch, so epochs
    are compared on the same draws.
    """

    saliency: object = field(default_factory=SaliencyObjective)
    seed: int = 0
    lower_is_better = frozenset({"loss", "area", "area_fake", "destroyed_acc", "loc_error"})

    def __call__(self, model: nn.Module, batch) -> dict[str, float]:
        generator = torch.Generator(device=batch.x.device).manual_seed(self.seed)
        wrong = other_classes(batch.y, model.masking.classes, generator)
        mask = model.masking(batch.x, batch.y)
        wrong_mask = model.masking(batch.x, wrong)
        terms = self.saliency.terms(model.black_box, batch.x, mask, batch.y, generator)
        right = (terms["logits"].argmax(1) == torch.cat([batch.y, batch.y])).float()  # the loss's own images
        b = len(batch.y)
        values = {"loss": (terms["loss"] + self.saliency.area_loss(wrong_mask)).mean().item(),
                  "area": mask.mean().item(), "area_fake": wrong_mask.mean().item(),
                  "preserved_acc": 100.0 * right[:b].mean().item(), "destroyed_acc": 100.0 * right[b:].mean().item()}
        if "boxes" in batch.extras:
            values["loc_error"] = localisation_error(mask.float(), batch.extras["boxes"])
        return values
