"""The kit's saliency methods behind one interface: ``method(model, x, y) -> (B, H, W)`` maps.

Every method takes the model, a (B, C, H, W) batch as the model takes it and
(B,) class indices, and returns non-negative maps as a tensor on x's device,
leaving the model as it found it. The sanity checks (``sanity.py``) take any
such method, so a new one (the masking model of a later chapter) plugs in
without a branch: copy ``GradCAMSaliency`` for a method with settings, or
``gradient_saliency`` for one without.

The maps' scales differ, and each method says which it gives: gradient maps are
absolute gradients (any non-negative scale), Grad-CAM's are in [0, 1] (each map
divided by its maximum, as pytorch-grad-cam does), and masks (``IterativeMask``)
are in [0, 1] with 1 meaning "keep". Measures that threshold a map
(``localisation.box_from_map``) take masks as they are and the others through
``localisation.normalise_map``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from .gradcam import grad_cam
from .gradient import compute_gradient_saliency_maps
from .iterative_mask import IterativeMask


class SaliencyMethod(Protocol):
    """``method(model, x, y) -> (B, H, W)`` non-negative maps on x's device; the model is left as it was found."""

    def __call__(self, model: nn.Module, x: torch.Tensor, y) -> torch.Tensor: ...


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
