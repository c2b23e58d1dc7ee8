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

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn

from ..data.planted_patch import PlantedPatch, planted_patch_images
from .methods import GradCAMSaliency, SaliencyMethod, gradient_saliency


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


def planted_evidence_check(model: nn.Module, methods: dict[str, SaliencyMethod] | None = None, seed: int = 1,
                           n_test: int = 256, patch: PlantedPatch = PlantedPatch(),
                           threshold: float = 0.7) -> dict:
    """Mass inside the patch for each saliency method on fresh test images.

    Only the label-1 images carry evidence that has a place; the maps of the
    label-0 images (evidence of absence) are not scored. ``model`` is a
    planted-patch detector (``trained_model("planted_patch")``); ``methods``
    maps names to saliency methods (default: gradient and Grad-CAM of ``conv2``).

    Returns:
        dict with ``accuracy`` (%, all test images), ``mass`` ({method: mean
        share inside the patch over the label-1 images}), ``maps`` ({method:
        (B, S, S) array}), ``patch_area`` (the share without localisation),
        ``passed`` (every mass at least ``threshold``), and the images ``x``.
    """
    from ..evaluation import accuracy as accuracy_percent

    if methods is None:
        methods = {"gradient": gradient_saliency, "Grad-CAM": GradCAMSaliency("conv2")}
    x, y = planted_patch_images(n_test, seed=seed, patch=patch)
    device = next(model.parameters()).device
    x, y = x.to(device), y.to(device)
    accuracy = accuracy_percent(model, x, y)
    x1, y1 = x[y == 1], y[y == 1]
    maps = {name: torch.as_tensor(method(model, x1, y1)).detach().cpu() for name, method in methods.items()}
    mass = {name: float(np.nanmean(mass_inside(m, patch))) for name, m in maps.items()}
    return {"accuracy": accuracy, "mass": mass, "maps": {k: v.numpy() for k, v in maps.items()},
            "patch_area": patch.area_fraction, "passed": all(v >= threshold for v in mass.values()),
            "x": x1.cpu()}


def randomised_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """A deep copy of ``model`` with every layer re-initialised (``reset_parameters``).

    The original is untouched. Layers without ``reset_parameters`` (e.g. timm's
    own blocks) keep their weights unless one of their sub-layers has it.
    """
    clone = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):  # seeded, without touching the caller's RNG
        torch.manual_seed(seed)
        for module in clone.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
    return clone


def model_randomisation_check(model: nn.Module, samples: torch.Tensor, labels, saliency: SaliencyMethod,
                              seed: int = 0) -> np.ndarray:
    """Spearman rank correlation of each image's map before and after re-initialising the model.

    Args:
        saliency: a saliency method, ``f(model, samples, labels) -> (B, H, W)`` maps.

    Returns:
        (B,) correlations in [-1, 1]. Values near 1 mean the map does not
        depend on what the model learned (the method fails the check).
    """
    labels = torch.as_tensor(labels)
    trained = torch.as_tensor(saliency(model, samples, labels)).detach().cpu().numpy()
    random = torch.as_tensor(saliency(randomised_copy(model, seed), samples, labels)).detach().cpu().numpy()
    out = []
    for a, b in zip(trained, random):
        a, b = a.ravel(), b.ravel()
        out.append(np.nan if a.std() == 0 or b.std() == 0 else spearmanr(a, b).statistic)
    return np.array(out, dtype=float)
