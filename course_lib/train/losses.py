"""Logit pairing and squeezing losses (Kannan et al., 2018), as used by Defendr.

All take (B, K) logits and (B,) labels and return a scalar. "Mean squared
difference" is the mean over the batch *and* the K logits (``F.mse_loss``);
the cross-entropy terms are means over examples.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F


def adversarial_logit_pairing(logits_clean: torch.Tensor, logits_adv: torch.Tensor, y: torch.Tensor,
                              lam: float = 0.5) -> torch.Tensor:
    """ALP: CE over the clean and adversarial examples (a batch of 2B) + lam * MSE(clean, adv logits)."""
    _check_pair(logits_clean, logits_adv)
    ce = 0.5 * (F.cross_entropy(logits_clean, y) + F.cross_entropy(logits_adv, y))
    return ce + lam * F.mse_loss(logits_clean, logits_adv)


def clean_logit_pairing(logits: torch.Tensor, y: torch.Tensor, lam: float = 0.5) -> torch.Tensor:
    """CLP: CE + lam * MSE between the logits of the first and second half of the batch (random pairs).

    The batch must have an even size; pairs are (i, i + B/2), so shuffle the data.
    """
    if len(logits) % 2:
        raise ValueError(f"clean logit pairing needs an even batch size, got {len(logits)}")
    half = len(logits) // 2
    return F.cross_entropy(logits, y) + lam * F.mse_loss(logits[:half], logits[half:])


def logit_squeezing(logits: torch.Tensor, y: torch.Tensor, lam: float = 0.05) -> torch.Tensor:
    """Clean logit squeezing: CE + lam * mean over examples of the L2 norm of the logits."""
    return F.cross_entropy(logits, y) + lam * logits.norm(dim=1).mean()


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"clean and adversarial logits must have the same shape, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
