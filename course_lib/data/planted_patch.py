"""Planted-evidence images: the label is decided only by a faint patch at a known place.

The saliency sanity check (``saliency/sanity.py``) trains a small CNN on them
and asks whether a saliency method's maps land on the patch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.utils.data import TensorDataset


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



def planted_patch_splits(profile, settings: dict, data_home=None, seed: int = 0):
    """Zoo data source: ``n_train`` training images and 256 each for validation and test (other seeds)."""
    from .splits import Splits

    patch = PlantedPatch()
    parts = [TensorDataset(*planted_patch_images(n, seed=seed + offset, patch=patch))
             for n, offset in ((settings["n_train"], 0), (256, 2), (256, 1))]
    return Splits(*parts, source="planted-patch images drawn by course_lib",
                  identity={"planted_patch": str(patch), "n_train": settings["n_train"], "seed": seed})
