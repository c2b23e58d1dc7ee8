"""Models used in the course, and a registry to build them by name."""
from __future__ import annotations

from typing import Callable

from torch import nn

from .simplenet import SimpleNet
from .xception import get_xception_based_model

# name -> builder; later chapters add their models here.
MODELS: dict[str, Callable[[], nn.Module]] = {
    "SimpleNet": SimpleNet,
    "XceptionBased": get_xception_based_model,
}


def get_model(name: str, **options) -> nn.Module:
    """Build a fresh model by its course name (see ``MODELS``).

    ``options`` go to the builder, e.g. ``weights_path`` for XceptionBased.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(MODELS)}")
    return MODELS[name](**options)


def get_nof_params(model: nn.Module) -> int:
    """Number of trainable parameters (those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["MODELS", "SimpleNet", "get_model", "get_nof_params", "get_xception_based_model"]
