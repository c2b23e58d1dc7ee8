"""Models of the course, a registry to build them by name, and (in each model's file) its zoo recipes.

Importing this package registers every model and every recipe. To add a
model, copy ``mnist_mlp.py``: the module, ``register_model`` for ``course train``
if students train it by name, and ``register(Recipe(...))`` for the zoo.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Callable

import torch
from torch import nn

MODELS: dict[str, Callable[..., nn.Module]] = {}
# Options that build a model whose weights will all come from a checkpoint
# (for example: no ImageNet download for a backbone the checkpoint overwrites).
CHECKPOINT_OPTIONS: dict[str, dict] = {}


def register_model(name: str, builder: Callable[..., nn.Module], checkpoint_options: dict | None = None) -> None:
    """Make ``builder`` available as ``get_model(name)`` (and ``course train -m name``)."""
    MODELS[name] = builder
    CHECKPOINT_OPTIONS[name] = dict(checkpoint_options or {})


def get_model(name: str, **options) -> nn.Module:
    """Build a fresh model by its course name (see ``MODELS``).

    ``options`` go to the builder, e.g. ``weights_path`` for XceptionBased; an
    option the builder does not take is an error naming the ones it does.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(MODELS)}")
    accepted = inspect.signature(MODELS[name]).parameters
    unknown = [key for key in options if key not in accepted]
    if unknown:
        raise ValueError(f"model {name} takes no option {', '.join(unknown)}; it takes: "
                         f"{', '.join(accepted) or 'none'}")
    return MODELS[name](**options)


def load_detector(name: str, checkpoint_path, device: str | torch.device = "cpu") -> nn.Module:
    """Build model ``name`` and load a checkpoint written by ``Trainer.run`` / ``course train``.

    The checkpoint is ``{model, val_acc, test_acc, epoch}`` (a bare state dict
    is accepted too). Returns the model in eval mode.
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
    model = get_model(name, **CHECKPOINT_OPTIONS.get(name, {}))
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{path} does not hold {name} weights (was it trained with another -m?): "
                         f"{str(err).splitlines()[0]}") from err
    return model.to(device).eval()


def get_nof_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (those with ``requires_grad``); the course project's name."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


get_nof_params = get_nof_parameters  # the shorter name the kit used first


from .efficientnet_lite import get_efficientnet_lite0  # noqa: E402
from .mnist_cnn import MnistCNN  # noqa: E402  (each import registers the file's recipes)
from .mnist_mlp import MnistMLP  # noqa: E402
from . import mnist_defences  # noqa: E402,F401  (the inference-time defences' recipes)
from . import fusion  # noqa: E402,F401  (contextual fusion: streams, heads and their recipes)
from . import fusion_cifar10  # noqa: E402,F401  (contextual fusion on CIFAR-10: the paper's Figure 4c-d)
from . import masking  # noqa: E402,F401  (real-time saliency: the masking model and its recipes)
from ..pixel_input import PixelInput  # noqa: E402  (a basic module: the zoo wraps models in it too)
from .planted_patch import PlantedPatchNet  # noqa: E402
from .simplenet import SimpleNet  # noqa: E402
from .xception import get_xception_based_model  # noqa: E402

register_model("SimpleNet", SimpleNet)
register_model("XceptionBased", get_xception_based_model, checkpoint_options={"pretrained": False})
register_model("EfficientNetLite0", get_efficientnet_lite0, checkpoint_options={"pretrained": False})
register_model("MnistCNN", MnistCNN)
register_model("MnistMLP", MnistMLP)
register_model("PlantedPatchNet", PlantedPatchNet)

__all__ = ["MODELS", "MnistCNN", "MnistMLP", "PixelInput", "PlantedPatchNet", "SimpleNet", "get_efficientnet_lite0", "get_model", "get_nof_parameters",
           "get_nof_params",
           "get_xception_based_model", "load_detector", "register_model"]
