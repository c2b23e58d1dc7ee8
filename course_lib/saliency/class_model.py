"""Class model visualisation (Simonyan et al., 2014): the input a model scores highest for a class.

Simonyan et al. find ``I* = argmax_I S_c(I) - lam * ||I||^2`` by gradient ascent
from the zero image, where ``S_c`` is the class's unnormalised score (the logit,
not the softmax, which could rise by lowering the other classes). Written here
because pytorch-grad-cam and captum explain a given image; neither builds the
image itself. For a model fed normalised images, zero is the mean image.
"""
from __future__ import annotations

import torch
from torch import nn

from ..model_state import frozen_eval


def class_model_visualisation(model: nn.Module, target: int, shape: tuple[int, ...], steps: int = 200,
                              lr: float = 0.05, l2: float = 1e-3, start: torch.Tensor | None = None
                              ) -> torch.Tensor:
    """The (1, C, H, W) input that maximises ``model``'s score for class ``target`` minus ``l2 * ||x||^2``.

    Args:
        model: maps (B, C, H, W) inputs to (B, n_classes) logits; used frozen in
            eval mode and handed back as it was found.
        target: the class index.
        shape: (C, H, W) of one input.
        steps, lr: iterations and learning rate of Adam on the input.
        l2: Simonyan's regulariser; larger keeps the image closer to ``start``'s scale.
        start: the first iterate (default zeros, Simonyan's choice).
    Returns:
        The optimised input on the model's device, detached, in the model's input space.
    """
    if steps < 1 or lr <= 0 or l2 < 0:
        raise ValueError(f"need steps >= 1, lr > 0 and l2 >= 0, got steps={steps}, lr={lr}, l2={l2}")
    device = next(model.parameters()).device
    x = (torch.zeros(1, *shape) if start is None else start.detach().clone().reshape(1, *shape)).to(device)
    x.requires_grad_(True)
    optimizer = torch.optim.Adam([x], lr=lr)
    with frozen_eval(model):
        logits = model(x)
        if not 0 <= target < logits.shape[1]:
            raise ValueError(f"target {target} is not a class of a model with {logits.shape[1]} outputs")
        for _ in range(steps):
            optimizer.zero_grad()
            objective = model(x)[0, target] - l2 * x.pow(2).sum()
            (-objective).backward()
            optimizer.step()
    return x.detach()
