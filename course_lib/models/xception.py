"""XceptionBased: timm's Xception backbone with the course's MLP head (real vs fake)."""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..data.faces import MEAN, STD, faces_splits
from ..train.recipes import Recipe, register
from ..train.trainer import output_name

BACKBONE = "legacy_xception"  # timm's port of the original Keras/Cadene Xception


def _head() -> nn.Sequential:
    """The course's head: 2048 -> 1000 -> 256 -> 64 -> 2 with ReLUs between."""
    return nn.Sequential(nn.Linear(2048, 1000), nn.ReLU(), nn.Linear(1000, 256), nn.ReLU(),
                         nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 2))


def _weights_help(cache: Path, url: str) -> str:
    return (f"get the ImageNet weights from {url} and either pass weights_path=<file> "
            f"(CLI: --weights FILE) or put the file in timm's cache folder {cache}; "
            "or pass allow_random_init=True to train from scratch on purpose")


def get_xception_based_model(pretrained: bool = True, weights_path: str | os.PathLike | None = None,
                             allow_random_init: bool = False) -> nn.Module:
    """Xception with its ``fc`` replaced by the course's MLP head; outputs (B, 2) logits.

    Args:
        pretrained: load ImageNet weights into the backbone through timm's
            normal mechanism (its cache folder, else a download).
        weights_path: a local file with the backbone's ImageNet state dict;
            used instead of the cache or the download.
        allow_random_init: when the weights cannot be had, keep the random
            initialisation (with a printed warning) instead of raising.

    Raises:
        FileNotFoundError: the weights are wanted but missing; the message
            says where timm looked and how to provide them.
    """
    import timm

    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"Xception weights file {path} does not exist")
        model = timm.create_model(BACKBONE, pretrained=True, pretrained_cfg_overlay={"file": str(path)})
    elif pretrained:
        try:
            model = timm.create_model(BACKBONE, pretrained=True)
        except OSError as err:  # no network and nothing in the cache (URLError is an OSError)
            model = timm.create_model(BACKBONE, pretrained=False)
            if not allow_random_init:
                cache = Path(torch.hub.get_dir()) / "checkpoints"
                url = model.pretrained_cfg.get("url", "timm's model hub")
                raise FileNotFoundError(f"cannot load Xception's ImageNet weights ({err}); "
                                        + _weights_help(cache, url)) from err
            print(f"warning: Xception's ImageNet weights are unavailable ({err}); "
                  "using a random initialisation as allowed by allow_random_init=True")
    else:
        model = timm.create_model(BACKBONE, pretrained=False)
    model.fc = _head()
    return model


# -- zoo recipe: XceptionBased on synthetic_dataset (chapters 3 and 4) ---------------------------
# quick: no ImageNet weights offline, and a training step of Xception on a 256x256
# image is slow on two cores (benchmarks/xception_training.py), so the random-init
# backbone trains one epoch on 64x64 crops (crops, not resizing, keep the pixel-level
# GAN traces). full: the course's settings with ImageNet weights.
register(Recipe(
    name="xception_synthetic", summary="XceptionBased on synthetic_dataset (the course's fine-tuned detector)",
    build=lambda settings: get_xception_based_model(pretrained=settings["pretrained"]),
    data=faces_splits("synthetic_dataset"),
    quick=dict(epochs=1, batch_size=16, optimizer="Adam", lr=1e-3, crop=64, pretrained=False),
    full=dict(epochs=2, batch_size=32, optimizer="Adam", lr=1e-3, crop=None, pretrained=True),
    run_name=lambda settings: output_name("synthetic_dataset", "XceptionBased", settings["optimizer"]),
    input_normalisation=(MEAN, STD)))
