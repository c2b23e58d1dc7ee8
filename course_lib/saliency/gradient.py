"""Gradient saliency maps (Simonyan et al., 2014): which pixels move the class score."""
from __future__ import annotations

import torch
from torch import nn

from ..model_state import check_batch, frozen_eval


def compute_gradient_saliency_maps(samples: torch.Tensor, true_labels, model: nn.Module) -> torch.Tensor:
    """|d score_{true class} / d input|, maximised over colour channels.

    Args:
        samples: (B, C, H, W) images, as the model takes them.
        true_labels: (B,) class indices; each image's map is for its own label.
        model: returns (B, n_classes) scores (logits).

    Returns:
        (B, H, W) non-negative maps on the samples' device, detached.

    The model runs in eval mode with frozen parameters and is given back as it
    was (mode, ``requires_grad``, parameters' ``.grad``). Each map depends on
    its own image only, so a batch gives the same maps as its images one by one.
    """
    labels = check_batch(samples, true_labels)
    device = next(model.parameters()).device
    x = samples.detach().to(device).clone().requires_grad_(True)
    with frozen_eval(model), torch.enable_grad():
        scores = model(x)
        if labels.max() >= scores.shape[1] or labels.min() < 0:
            raise ValueError(f"labels must lie in [0, {scores.shape[1] - 1}], got {labels.tolist()}")
        picked = scores.gather(1, labels.to(device)[:, None]).sum()
        (grad,) = torch.autograd.grad(picked, x)
    return grad.abs().amax(dim=1).detach().to(samples.device)
