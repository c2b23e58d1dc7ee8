"""Ensembles with normalised scores (Defendr, section 4.4)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class Ensemble(nn.Module):
    """Sum of the members' class scores, each row normalised to sum to 1 first (softmax).

    ``scores(x)`` is that (B, K) sum, so each row sums to the number of members;
    ``forward`` returns its log divided by the count (log of the mean
    probability), a logit-like output for cross-entropy and attacks. Attacking
    the ensemble attacks this combined output.
    """

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}")
        self.members = nn.ModuleList(members)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.softmax(member(x), dim=1) for member in self.members]).sum(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.scores(x) / len(self.members)).clamp_min(1e-12).log()
