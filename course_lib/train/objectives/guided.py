"""HGD's guided losses (Liao et al., 2018) for a denoiser in front of a frozen classifier.

The model is a ``defences.Denoised``: ``model.denoiser`` trains,
``model.classifier`` is the fixed target. Each batch holds adversarial images
(``batch.x``) and their clean twins (``batch.clean``). The four losses differ in
where they compare the denoised adversarial image with the clean one: in pixels,
in a feature map of the classifier, in its logits, or through the true label.
All distances are mean absolute differences (L1), as in HGD.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ...model_state import forward_with_layers
from .base import Objective, batch_accuracy


def layer_output(model: nn.Module, x: torch.Tensor, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(output of ``model``'s submodule ``layer``, logits) for one forward pass, keeping the graph."""
    logits, captured = forward_with_layers(model, x, [layer])
    return captured[layer], logits


def _pairs(batch) -> tuple[torch.Tensor, torch.Tensor]:
    if batch.clean is None:
        raise ValueError("guided losses need adversarial images with their clean twins (batch.clean); "
                         "train on defences-style pairs, e.g. batches.DenoiserPairs")
    return batch.x, batch.clean


@dataclass(frozen=True)
class PixelGuided(Objective):
    """L1 between the denoised adversarial image and the clean image (HGD's PGD loss)."""

    def __call__(self, model: nn.Module, batch) -> tuple[torch.Tensor, dict[str, float]]:
        adv, clean = _pairs(batch)
        denoised = model.denoiser(adv)
        with torch.no_grad():
            acc = batch_accuracy(model.classifier(denoised), batch.y)
        return (denoised - clean).abs().mean(), {"acc": acc}


@dataclass(frozen=True)
class FeatureGuided(Objective):
    """L1 between the classifier's ``layer`` output for the denoised adversarial image and for the clean one.

    HGD's FGD takes the topmost convolutional layer (``"conv2"`` for ``MnistCNN``).
    """

    layer: str

    def __call__(self, model: nn.Module, batch) -> tuple[torch.Tensor, dict[str, float]]:
        adv, clean = _pairs(batch)
        with torch.no_grad():
            target, _ = layer_output(model.classifier, clean, self.layer)
        features, logits = layer_output(model.classifier, model.denoiser(adv), self.layer)
        return (features - target).abs().mean(), {"acc": batch_accuracy(logits, batch.y)}


@dataclass(frozen=True)
class LogitGuided(Objective):
    """L1 between the classifier's logits for the denoised adversarial image and for the clean one."""

    def __call__(self, model: nn.Module, batch) -> tuple[torch.Tensor, dict[str, float]]:
        adv, clean = _pairs(batch)
        with torch.no_grad():
            target = model.classifier(clean)
        logits = model.classifier(model.denoiser(adv))
        return (logits - target).abs().mean(), {"acc": batch_accuracy(logits, batch.y)}


@dataclass(frozen=True)
class LabelGuided(Objective):
    """Cross-entropy of the classifier on the denoised adversarial image and the true label."""

    def __call__(self, model: nn.Module, batch) -> tuple[torch.Tensor, dict[str, float]]:
        adv, _ = _pairs(batch)
        logits = model.classifier(model.denoiser(adv))
        return F.cross_entropy(logits, batch.y), {"acc": batch_accuracy(logits, batch.y)}
