"""Local Lipschitz ratio: how far a layer moves perturbed copies of x, against how far they were moved.

For x + v, the paper's eq. (9) compares ||g(Phi_L(x + v)) - g(Phi_L(x))|| with
||h(x + v) - h(x)||, where g and h are min-max normalisers fitted on many
samples (the smallest and largest value seen at the layer's output and at the
input). A ratio below 1 means the layer pulls the copies towards x.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .perturbations import sample_generator, sphere_perturbations
from .scores import _check_radii
from .topology import layer_outputs


@dataclass(frozen=True)
class MinMax:
    """The normaliser z -> (z - low) / (high - low), one scalar low and high for all elements."""

    low: float
    high: float

    def __post_init__(self):
        if not self.high > self.low:
            raise ValueError(f"a min-max normaliser needs high > low, got low={self.low}, high={self.high}; "
                             "fit it on samples whose values are not all equal")

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.low) / (self.high - self.low)


def fit_minmax(model: nn.Module, images: torch.Tensor, layer: str, batch_size: int = 500) -> tuple[MinMax, MinMax]:
    """(h, g): min-max normalisers of the input ``images`` and of ``layer``'s outputs on them.

    ``images``: (M, C, H, W), the paper's "thousands of samples"; ``layer`` as in
    ``topology.layer_outputs``.
    """
    device = next(model.parameters()).device
    low, high = float("inf"), float("-inf")
    for start in range(0, len(images), batch_size):
        out = layer_outputs(model, images[start:start + batch_size].to(device), [layer])[layer]
        low, high = min(low, out.min().item()), max(high, out.max().item())
    return MinMax(images.min().item(), images.max().item()), MinMax(low, high)


@dataclass
class LipschitzResult:
    """Normalised distances of T perturbed copies per sample and radius (N samples, R radii).

    Attributes:
        radii: (R,) L2 norms of the perturbations (pixel units).
        input_distance: (N, R, T) ||h(x + v) - h(x)||.
        output_distance: (N, R, T) ||g(Phi_L(x + v)) - g(Phi_L(x))||.
        layer: the layer Phi_L.
    """

    radii: torch.Tensor
    input_distance: np.ndarray
    output_distance: np.ndarray
    layer: str

    @property
    def ratio(self) -> np.ndarray:
        """(N, R, T) output distance over input distance: the local Lipschitz ratio of each copy."""
        return self.output_distance / self.input_distance

    @property
    def share_below_one(self) -> float:
        """Share of all copies whose ratio is below 1 (the layer pulled them towards x), in [0, 1]."""
        return float((self.ratio < 1).mean())

    def fit(self, degree: int) -> np.ndarray:
        """Least-squares polynomial output ~ input of ``degree`` (1: linear, 2: quadratic), highest power first."""
        return np.polyfit(self.input_distance.ravel(), self.output_distance.ravel(), degree)


def local_lipschitz(model: nn.Module, x: torch.Tensor, radii: Sequence[float], layer: str,
                    normalisers: tuple[MinMax, MinMax], directions: int = 20, seed: int = 0) -> LipschitzResult:
    """Distances of ``directions`` random copies of each sample at each radius, normalised (paper's Fig. 6).

    Args:
        model: (B, C, H, W) pixels -> logits; measured in eval mode, left as found.
        x: (N, C, H, W) samples.
        radii: L2 norms of the perturbations (pixel units).
        layer: Phi_L, a name as in ``topology.layer_outputs`` (the paper: the layer before the classifier).
        normalisers: (h, g) from ``fit_minmax``; fit them once per model on the same images.
        directions: T, random copies per radius.
        seed: sample i's copies come from ``sample_generator(seed, i)``, the same for every model.
    """
    radii = _check_radii(radii, directions)
    h, g = normalisers
    device = next(model.parameters()).device
    d_in = np.zeros((len(x), len(radii), directions))
    d_out = np.zeros_like(d_in)
    for i, image in enumerate(x):
        generator = sample_generator(seed, i)
        clean = g(layer_outputs(model, image[None].to(device), [layer])[layer])
        for j, radius in enumerate(radii.tolist()):
            copies = image.cpu() + sphere_perturbations(image.shape, radius, directions, generator)
            out = g(layer_outputs(model, copies.to(device), [layer])[layer])  # one pass per radius
            d_out[i, j] = (out - clean).norm(dim=1).numpy()
            d_in[i, j] = (h(copies) - h(image.cpu()[None])).flatten(1).norm(dim=1).numpy()
    return LipschitzResult(radii, d_in, d_out, layer)
