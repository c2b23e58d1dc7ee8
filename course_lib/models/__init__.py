"""Models used in the course, and a registry to build them by name."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
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


def load_detector(name: str, checkpoint_path, device: str | torch.device = "cpu") -> nn.Module:
    """Build model ``name`` and load a checkpoint written by ``Trainer.run`` / ``course train``.

    The checkpoint is ``{model, val_acc, test_acc, epoch}`` (a bare state dict
    is accepted too). XceptionBased is built without ImageNet weights, since
    the checkpoint holds all of them. Returns the model in eval mode.
    """
    path = Path(checkpoint_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; `course train` writes "
                                "<out>/<dataset>_<model>_<optimizer>.pt (default --out out)")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and unsupported-object errors all mean "not a checkpoint"
        raise ValueError(f"{path} is not a PyTorch checkpoint that can be loaded safely ({err})") from err
    state = saved["model"] if isinstance(saved, dict) and "model" in saved else saved
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds no state dict (found {type(state).__name__})")
    model = get_model(name, pretrained=False) if name == "XceptionBased" else get_model(name)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{path} does not hold {name} weights (was it trained with another -m?): "
                         f"{str(err).splitlines()[0]}") from err
    return model.to(device).eval()


def get_nof_params(model: nn.Module) -> int:
    """Number of trainable parameters (those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["MODELS", "SimpleNet", "get_model", "get_nof_params", "get_xception_based_model", "load_detector"]
