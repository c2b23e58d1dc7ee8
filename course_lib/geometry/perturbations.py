"""Seeded perturbations of a given L2 norm: random directions, or permutations of one vector."""
from __future__ import annotations

from typing import Sequence

import torch


def sample_generator(seed: int, index: int) -> torch.Generator:
    """The CPU generator of sample ``index`` under ``seed``: the same draws for every model and device."""
    return torch.Generator().manual_seed(seed * 1_000_003 + index)


def sphere_perturbations(shape: Sequence[int], radius: float, count: int,
                         generator: torch.Generator) -> torch.Tensor:
    """(count, *shape) perturbations v ~ U(-1, 1), each rescaled to L2 norm ``radius``.

    The paper's eq. (4): directions drawn uniformly in the cube, projected on the
    sphere of radius r (so they are not uniform on the sphere; neither are the paper's).
    """
    v = torch.rand((count, *shape), generator=generator) * 2 - 1
    norms = v.flatten(1).norm(dim=1).view(count, *([1] * len(shape)))
    return radius * v / norms


def permuted_perturbations(shape: Sequence[int], radius: float, count: int,
                           generator: torch.Generator) -> torch.Tensor:
    """(count, *shape): ``count`` random permutations of the elements of one perturbation of norm ``radius``.

    The paper's eq. (6): every copy has the same norm and the same histogram of
    values, so a symmetric function gives them all the same score.
    """
    one = sphere_perturbations(shape, radius, 1, generator).flatten()
    order = torch.argsort(torch.rand(count, one.numel(), generator=generator), dim=1)
    return one[order].view(count, *shape)
