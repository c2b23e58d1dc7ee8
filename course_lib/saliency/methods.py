"""The kit's saliency methods behind one interface: ``method(model, x, y) -> (B, H, W)`` maps.

Every method takes the model, a (B, C, H, W) batch as the model takes it and
(B,) class indices, and returns non-negative maps as a tensor on x's device,
leaving the model as it found it. The sanity checks (``sanity.py``) take any
such method, so a new one (the masking model of a later chapter) plugs in
without a branch: copy ``GradCAMSaliency`` for a method with settings, or
``gradient_saliency`` for one without.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .gradcam import grad_cam
from .gradient import compute_gradient_saliency_maps


def gradient_saliency(model: nn.Module, x: torch.Tensor, y) -> torch.Tensor:
    """Gradient maps (Simonyan et al.): ``compute_gradient_saliency_maps`` in the interface's order."""
    return compute_gradient_saliency_maps(x, y, model)


@dataclass(frozen=True)
class GradCAMSaliency:
    """Grad-CAM of the layer named ``layer`` (an attribute path such as "conv2" or "features.7")."""

    layer: str

    def __call__(self, model: nn.Module, x: torch.Tensor, y) -> torch.Tensor:
        target = model.get_submodule(self.layer)
        return torch.from_numpy(grad_cam(model, x, y, target)).to(x.device)
