"""Topology preservation: do a layer's outputs keep the distances between perturbed copies of x?

A layer preserves the local topology when the distance matrix of its outputs
for N perturbed copies of x is a linear function of the distance matrix of the
copies themselves (the paper's section 2.3). The Mantel test measures that: the
Pearson correlation rho of the two matrices' off-diagonal entries, with a
permutation p-value. scikit-bio's ``mantel`` does the test. As in the paper, a
"distance" is the squared Euclidean distance d d^T, and the layer it claims
|rho| < 0.1 for is Phi_L, the layer before the classifier.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from skbio import DistanceMatrix
from skbio.stats.distance import mantel
from torch import nn

from ..model_state import forward_with_layers, frozen_eval
from .perturbations import sample_generator, sphere_perturbations
from .scores import _check_radii

LOGITS = "logits"  # the layer name that means the model's own output


@dataclass
class TopologyResult:
    """Mantel statistics per sample, radius and layer (N samples, R radii, L layers).

    Attributes:
        radii: (R,) L2 norms of the perturbations (pixel units).
        layers: the L layer names.
        rho: (N, R, L) Pearson correlation of the input and layer (squared) distance matrices.
        p: (N, R, L) the permutation test's two-sided p-value.
    """

    radii: torch.Tensor
    layers: list[str]
    rho: np.ndarray
    p: np.ndarray


def layer_outputs(model: nn.Module, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """One forward pass of ``x``; each named layer's output flattened to (B, D), on the CPU.

    A name is a submodule of ``model`` (``model.get_submodule``; for the MNIST
    models "conv1", "fc1", ...: the output of that module, before the ReLU the
    model applies after it) or "logits" for the model's output. Forward hooks
    read the layers; they are removed afterwards, also after an error.
    """
    hooked = [name for name in layers if name != LOGITS]
    try:
        with frozen_eval(model), torch.no_grad():
            logits, captured = forward_with_layers(model, x, hooked)
    except ValueError as err:
        raise ValueError(f"{err}, or {LOGITS!r} for the output") from err
    captured[LOGITS] = logits
    return {name: captured[name].detach().flatten(1).float().cpu() for name in layers}


def _distances(points: torch.Tensor, squared: bool = True) -> DistanceMatrix:
    """(N, D) points -> scikit-bio DistanceMatrix of their (squared) Euclidean distances (float64, symmetric)."""
    d = torch.cdist(points.double(), points.double()).numpy()
    if squared:
        d = d ** 2
    d = (d + d.T) / 2
    np.fill_diagonal(d, 0.0)
    return DistanceMatrix(d)


def topology(model: nn.Module, x: torch.Tensor, radii: Sequence[float], layers: Sequence[str],
             copies: int = 30, permutations: int = 999, seed: int = 0, squared: bool = True) -> TopologyResult:
    """Mantel rho and p between the distances of ``copies`` perturbed copies of each sample and of their layer outputs.

    Args:
        model: (B, C, H, W) pixels -> logits; measured in eval mode, left as found.
        x: (N, C, H, W) samples.
        radii: L2 norms of the perturbations (the copies lie on the sphere of that radius around x).
        layers: names as in ``layer_outputs``.
        copies: N, the number of perturbed copies (the distance matrices are N x N).
        permutations: permutations of the Mantel test (its p-value's resolution is 1 / (permutations + 1)).
        seed: sample i's copies come from ``sample_generator(seed, i)``; the test's permutations from ``seed``.
        squared: compare squared Euclidean distances (the paper's d d^T); False for plain distances.
    """
    radii = _check_radii(radii, copies)
    if copies < 3:
        raise ValueError(f"the Mantel test needs at least 3 copies, got {copies}")
    layers = list(layers)
    device = next(model.parameters()).device
    rho = np.zeros((len(x), len(radii), len(layers)))
    p = np.zeros_like(rho)
    for i, image in enumerate(x):
        generator = sample_generator(seed, i)
        for j, radius in enumerate(radii.tolist()):
            points = image.cpu() + sphere_perturbations(image.shape, radius, copies, generator)
            outputs = layer_outputs(model, points.to(device), layers)  # one pass per radius
            inputs = _distances(points.flatten(1), squared)
            for k, name in enumerate(layers):
                rho[i, j, k], p[i, j, k], _ = mantel(inputs, _distances(outputs[name], squared), method="pearson",
                                                     permutations=permutations, seed=seed)
    return TopologyResult(radii, layers, rho, p)
