"""Isotropy and symmetry: how much the true-class score varies over perturbations of one norm."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from ..model_state import check_batch, frozen_eval
from .perturbations import permuted_perturbations, sample_generator, sphere_perturbations


@dataclass
class ScoreSpread:
    """Scores of T perturbed copies per sample and radius (N samples, R radii).

    Attributes:
        radii: (R,) L2 norms of the perturbations, in pixel units.
        range: (N, R) max minus min of the true-class probability over the T copies
            (0 for a function that is isotropic / symmetric at that radius).
        mean: (N, R) mean true-class probability of the copies.
        misclassified: (N, R) bool, whether any copy's top class is not the label.
        kind: "isotropy" or "symmetry".
    """

    radii: torch.Tensor
    range: torch.Tensor
    mean: torch.Tensor
    misclassified: torch.Tensor
    kind: str


def confident_samples(models: Sequence[nn.Module], x: torch.Tensor, y, threshold: float = 0.99,
                      count: int | None = None) -> torch.Tensor:
    """Indices of the samples that every model classifies correctly with probability above ``threshold``.

    The paper studies only such samples (over 99% confidence); choosing them
    for all models at once lets every model be measured on the same images.
    Returns at most ``count`` indices (all when None), in order.
    """
    y = check_batch(x, y)
    keep = torch.ones(len(x), dtype=torch.bool)
    for model in models:
        device = next(model.parameters()).device
        with frozen_eval(model), torch.no_grad():
            probs = torch.softmax(model(x.to(device)), dim=1).cpu()
        keep &= (probs.argmax(1) == y) & (probs[torch.arange(len(y)), y] > threshold)
    chosen = keep.nonzero().flatten()
    if len(chosen) == 0:
        raise ValueError(f"no sample is classified correctly with probability > {threshold} by every "
                         "model; lower the threshold or pass more samples")
    return chosen[:count] if count is not None else chosen


Draw = Callable[[Sequence[int], float, int, torch.Generator], torch.Tensor]


def _check_radii(radii, directions: int) -> torch.Tensor:
    radii = torch.as_tensor(radii, dtype=torch.float32).flatten()
    if len(radii) == 0 or (radii <= 0).any():
        raise ValueError(f"radii must be positive L2 norms, got {radii.tolist()}")
    if directions < 2:
        raise ValueError(f"need at least 2 perturbations per radius to measure a spread, got {directions}")
    return radii


def _spread(model: nn.Module, x: torch.Tensor, y, radii, directions: int, seed: int, draw: Draw,
            kind: str) -> ScoreSpread:
    y = check_batch(x, y)
    radii = _check_radii(radii, directions)
    device = next(model.parameters()).device
    spread = torch.zeros(len(x), len(radii))
    mean = torch.zeros(len(x), len(radii))
    wrong = torch.zeros(len(x), len(radii), dtype=torch.bool)
    with frozen_eval(model), torch.no_grad():
        for i, (image, label) in enumerate(zip(x, y)):
            generator = sample_generator(seed, i)
            for j, radius in enumerate(radii.tolist()):
                copies = image.cpu() + draw(image.shape, radius, directions, generator)
                probs = torch.softmax(model(copies.to(device)).float(), dim=1).cpu()  # one pass per radius
                score = probs[:, label]
                spread[i, j] = score.max() - score.min()
                mean[i, j] = score.mean()
                wrong[i, j] = bool((probs.argmax(1) != label).any())
    return ScoreSpread(radii, spread, mean, wrong, kind)


def isotropy(model: nn.Module, x: torch.Tensor, y, radii: Sequence[float], directions: int = 100,
             seed: int = 0) -> ScoreSpread:
    """True-class score of ``directions`` random perturbations at each radius (paper's eq. 4, Fig. 1).

    Args:
        model: (B, C, H, W) pixels -> (B, K) logits; measured in eval mode, left as found.
        x: (N, C, H, W) samples; y: (N,) their labels.
        radii: L2 norms of the perturbations (pixel units).
        directions: T, the number of random directions per radius (paper: 100).
        seed: sample i draws from ``sample_generator(seed, i)``.
    """
    return _spread(model, x, y, radii, directions, seed, sphere_perturbations, "isotropy")


def symmetry(model: nn.Module, x: torch.Tensor, y, radii: Sequence[float], directions: int = 100,
             seed: int = 0) -> ScoreSpread:
    """True-class score of ``directions`` permutations of one random perturbation per radius (eq. 6, Fig. 3).

    Arguments as in ``isotropy``.
    """
    return _spread(model, x, y, radii, directions, seed, permuted_perturbations, "symmetry")
