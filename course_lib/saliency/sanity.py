"""Sanity checks for saliency maps: planted evidence and model randomisation.

Two checks a careful instructor runs before trusting a saliency method:

* **Planted evidence**: train a small CNN on images whose label is decided
  only by a patch at a known place; the maps of the images that carry the
  patch must put most of their mass inside it.
* **Model randomisation** (Adebayo et al., 2018): re-initialise the
  weights; a map that stays the same explains the image, not the model.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn

from .gradcam import grad_cam
from .gradient import compute_gradient_saliency_maps


@dataclass(frozen=True)
class PlantedPatch:
    """Where the evidence is: a ``size`` x ``size`` square at (``top``, ``left``) in pixels."""

    image_size: int = 32
    top: int = 4
    left: int = 20
    size: int = 8

    @property
    def area_fraction(self) -> float:
        """Share of the image the patch covers: the mass a map without localisation puts there."""
        return self.size ** 2 / self.image_size ** 2


def planted_patch_images(n: int, seed: int = 0, patch: PlantedPatch = PlantedPatch(),
                         noise: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """Grey noisy images; label 1 images carry a faint red patch at ``patch``.

    The background (a random grey level, a random linear ramp and per-pixel
    grey noise of std ``noise``) is the same for both labels, so the patch is
    the only evidence. Its tint fades to zero at the patch border (a sine
    window) so that a detector cannot use a sharp edge that spills outside.

    Returns:
        (x, y): (n, 3, S, S) float images in [0, 1] and (n,) labels 0/1.
    """
    g = torch.Generator().manual_seed(seed)
    s = patch.image_size
    y = torch.randint(0, 2, (n,), generator=g)
    t = torch.linspace(-1, 1, s)
    angle = torch.rand(n, generator=g) * 2 * math.pi
    ramp = torch.cos(angle)[:, None, None] * t[None, :, None] + torch.sin(angle)[:, None, None] * t[None, None, :]
    grey = 0.4 + 0.2 * torch.rand(n, 1, 1, generator=g) + 0.15 * ramp
    grey = grey[:, None] + noise * torch.randn(n, 1, s, s, generator=g)
    x = grey.repeat(1, 3, 1, 1)
    window = torch.sin(torch.linspace(0, math.pi, patch.size + 2)[1:-1])
    tint = torch.tensor([0.4, -0.16, -0.16])[:, None, None] * (window[:, None] * window[None, :])
    rows, cols = slice(patch.top, patch.top + patch.size), slice(patch.left, patch.left + patch.size)
    x[y == 1, :, rows, cols] += tint
    return x.clamp(0, 1), y


class PlantedPatchNet(nn.Module):
    """A small CNN: two 3x3 convolutions, global max pooling, one linear layer.

    (B, 3, S, S) in [0, 1] -> (B, 2) logits. ``conv2`` is the layer Grad-CAM explains.
    """

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc = nn.Linear(32, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        return self.fc(torch.relu(self.conv2(x)).amax(dim=(2, 3)))


def train_planted_patch_model(seed: int = 0, steps: int = 300, n_train: int = 1024,
                              patch: PlantedPatch = PlantedPatch()) -> PlantedPatchNet:
    """Train ``PlantedPatchNet`` on ``planted_patch_images`` (AdamW, batch 32); about 2.5 s on two CPU cores."""
    torch.manual_seed(seed)
    x, y = planted_patch_images(n_train, seed=seed, patch=patch)
    model = PlantedPatchNet()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.1)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        batch = torch.randint(0, n_train, (32,), generator=g)
        loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def mass_inside(maps, patch: PlantedPatch) -> np.ndarray:
    """Share of each map's total mass inside the patch: (B, S, S) non-negative maps -> (B,).

    A map with no mass at all gets NaN (it points nowhere), not 0 or 1.
    """
    maps = torch.as_tensor(maps).double()
    if maps.ndim != 3 or maps.shape[1:] != (patch.image_size, patch.image_size):
        raise ValueError(f"maps must have shape (B, {patch.image_size}, {patch.image_size}), "
                         f"got {tuple(maps.shape)}")
    if (maps < 0).any():
        raise ValueError("maps must be non-negative (take the absolute value first)")
    inside = maps[:, patch.top:patch.top + patch.size, patch.left:patch.left + patch.size].sum(dim=(1, 2))
    total = maps.sum(dim=(1, 2))
    return torch.where(total > 0, inside / total.clamp_min(1e-300), torch.nan).numpy()


def planted_evidence_check(model: nn.Module, seed: int = 1, n_test: int = 256,
                           patch: PlantedPatch = PlantedPatch(), threshold: float = 0.7) -> dict:
    """Mass inside the patch for gradient maps and Grad-CAM on fresh test images.

    Only the label-1 images carry evidence that has a place; the maps of the
    label-0 images (evidence of absence) are not scored. ``model`` must be
    a ``PlantedPatchNet`` trained on ``planted_patch_images`` (its ``conv2`` is explained).

    Returns:
        dict with ``accuracy`` (%, all test images), ``gradient_mass`` and
        ``gradcam_mass`` (mean share inside the patch over the label-1 images),
        ``patch_area`` (the share without localisation), ``passed`` (both
        masses at least ``threshold``), and the maps and images (``x``,
        ``gradient_maps``, ``gradcam_maps``) for figures.
    """
    x, y = planted_patch_images(n_test, seed=seed, patch=patch)
    from ..evaluation import accuracy as accuracy_percent

    accuracy = accuracy_percent(model, x, y)
    x1, y1 = x[y == 1], y[y == 1]
    gradient_maps = compute_gradient_saliency_maps(x1, y1, model)
    gradcam_maps = grad_cam(model, x1, y1, model.conv2)
    gradient_mass = float(np.nanmean(mass_inside(gradient_maps, patch)))
    gradcam_mass = float(np.nanmean(mass_inside(gradcam_maps, patch)))
    return {"accuracy": accuracy, "gradient_mass": gradient_mass, "gradcam_mass": gradcam_mass,
            "patch_area": patch.area_fraction,
            "passed": gradient_mass >= threshold and gradcam_mass >= threshold,
            "x": x1, "gradient_maps": gradient_maps.numpy(), "gradcam_maps": gradcam_maps}


def randomised_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """A deep copy of ``model`` with every layer re-initialised (``reset_parameters``).

    The original is untouched. Layers without ``reset_parameters`` (e.g. timm's
    own blocks) keep their weights unless one of their sub-layers has it.
    """
    torch.manual_seed(seed)
    clone = copy.deepcopy(model)
    for module in clone.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return clone


def model_randomisation_check(model: nn.Module, samples: torch.Tensor, labels,
                              saliency: Callable[[nn.Module, torch.Tensor, torch.Tensor], np.ndarray],
                              seed: int = 0) -> np.ndarray:
    """Spearman rank correlation of each image's map before and after re-initialising the model.

    Args:
        saliency: ``f(model, samples, labels) -> (B, H, W)`` maps.

    Returns:
        (B,) correlations in [-1, 1]. Values near 1 mean the map does not
        depend on what the model learned (the method fails the check).
    """
    labels = torch.as_tensor(labels)
    trained = np.asarray(saliency(model, samples, labels))
    random = np.asarray(saliency(randomised_copy(model, seed), samples, labels))
    out = []
    for a, b in zip(trained, random):
        a, b = a.ravel(), b.ravel()
        out.append(np.nan if a.std() == 0 or b.std() == 0 else spearmanr(a, b).statistic)
    return np.array(out, dtype=float)


def gradient_saliency(model: nn.Module, samples: torch.Tensor, labels) -> np.ndarray:
    """``compute_gradient_saliency_maps`` with the (model, samples, labels) argument order."""
    return compute_gradient_saliency_maps(samples, labels, model).cpu().numpy()
