"""Optimizers by the course's names ("SGD", "Adam")."""
from __future__ import annotations

import torch

OPTIMIZERS = ("SGD", "Adam", "AdamW")


def make_optimizer(name: str, parameters, lr: float, momentum: float = 0.9,
                   weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Build the optimizer ``name`` with learning rate ``lr`` (SGD momentum, weight decay).

    The fused implementations update all parameters in one kernel, which
    matters for SimpleNet's 16.6M-parameter fc1 on a CPU
    (``benchmarks/simplenet_training.py`` measures it). The update rule is the
    same (results agree up to floating-point rounding).
    """
    if lr <= 0:
        raise ValueError(f"learning rate must be positive, got {lr}")
    if name == "SGD":
        return torch.optim.SGD(parameters, lr=lr, momentum=momentum, weight_decay=weight_decay, fused=True)
    if name == "Adam":
        return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay, fused=True)
    if name == "AdamW":
        return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay, fused=True)
    raise ValueError(f"unknown optimizer {name!r}; valid optimizers: {', '.join(OPTIMIZERS)}")
