"""Bit-depth reduction (Xu et al., feature squeezing) and BPDA, the attack that sees through it."""
from __future__ import annotations

import torch
from torch import nn


class BitDepth(nn.Module):
    """Round pixels in [0, 1] to ``bits`` bits: round(x * (2^bits - 1)) / (2^bits - 1).

    Its gradient is zero almost everywhere (``torch.round``), so a gradient
    attack through it learns nothing: the textbook case of a masked gradient.
    """

    def __init__(self, bits: int = 1):
        super().__init__()
        if not 1 <= bits <= 8:
            raise ValueError(f"bits must be in 1..8, got {bits}")
        self.bits = bits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        levels = 2 ** self.bits - 1
        return torch.round(x.clamp(0, 1) * levels) / levels


class BPDA(nn.Module):
    """Backward pass differentiable approximation (Athalye et al., 2018) with the identity.

    Forward: ``layer(x)``. Backward: the gradient passes as if ``layer`` were
    the identity, so an attack gets a useful gradient through a layer whose own
    gradient is zero or undefined.
    """

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + (self.layer(x) - x).detach()


def bpda(model: nn.Module, layer_name: str) -> nn.Module:
    """A view of ``model`` whose child ``layer_name`` is wrapped in ``BPDA``; ``model`` itself is unchanged.

    The view shares every parameter with ``model``: attack the view (or take
    its gradient) while predicting with the defended model.
    """
    import copy

    if layer_name not in model._modules:
        raise ValueError(f"model has no child module {layer_name!r}; its children: {', '.join(model._modules)}")
    view = copy.copy(model)
    view._modules = dict(model._modules)
    view._modules[layer_name] = BPDA(model._modules[layer_name])
    return view
