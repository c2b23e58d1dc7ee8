"""The contextual-fusion chapter's two ResNet-18 feature extractors, from their published files (and
the real-time saliency chapter's ImageNet ResNet-50, loaded the same way).

- scene-centric: CSAIL's ResNet-18 trained on Places365 (Zhou et al.),
  ``resnet18_places365.pth.tar``;
- object-centric: torchvision's ImageNet ResNet-18 (``ResNet18_Weights.IMAGENET1K_V1``).

Both are torchvision ``resnet18`` modules returned in eval mode. Both were
trained on ImageNet-normalised inputs: ``(x - IMAGENET_MEAN) / IMAGENET_STD`` per
channel, with ``x`` (B, 3, H, W) in [0, 1] (``normalise_imagenet``, or wrap the
model in ``course_lib.pixel_input.PixelInput(model, IMAGENET_MEAN, IMAGENET_STD)``
to give it pixels). Nothing downloads unless asked to: a missing file is an
error with its URL and the place to put it.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import re
import warnings
from pathlib import Path

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

PLACES365_FILE = "resnet18_places365.pth.tar"
PLACES365_URL = "http://places2.csail.mit.edu/models_places365/resnet18_places365.pth.tar"
PLACES365_CLASSES = 365
# CSAIL publishes no checksum; every tensor's name and shape is checked instead.

IMAGENET_FILE = "resnet18-f37072fd.pth"
IMAGENET_URL = "https://download.pytorch.org/models/resnet18-f37072fd.pth"
SHA256_PREFIX = "f37072fd"  # torch.hub's convention: the file name carries its SHA-256's first digits


def normalise_imagenet(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) pixels in [0, 1] -> the normalised input both extractors were trained on."""
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected (B, 3, H, W) pixels in [0, 1], got shape {tuple(x.shape)}")
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def _weights_folder(data_home) -> Path:
    from ..config import data_home as resolve_home

    return resolve_home(data_home) / "weights"


# What torch's weights-only unpickler says when it meets a pickled object it will not build
# (anything else it says means the file is damaged).
_REFUSALS = ("Unsupported global", "unrecognized function", "unsupported class")


def _read_checkpoint(path: Path, trust_pickle: bool, how_to_get: str):
    """torch.load, tensors only; arbitrary pickled objects only with ``trust_pickle``."""
    damaged = f"{path} is not a readable PyTorch checkpoint ({{}}); {how_to_get}"
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        refused = re.search(r"WeightsUnpickler error: ([^\n]*?)(\. Please|\n|$)", str(err))
        if refused is None or not any(word.lower() in refused.group(1).lower() for word in _REFUSALS):
            raise ValueError(damaged.format(" ".join(str(err).split())[-200:])) from err
        if not trust_pickle:
            raise ValueError(
                f"{path} holds pickled Python objects besides tensors, which torch.load(weights_only=True) "
                f"refuses ({refused.group(1)}). Unpickling them runs code that the file names, so only do "
                "it for a file you got from its publisher: pass trust_pickle=True to load it with "
                "weights_only=False") from err
    except (RuntimeError, EOFError, OSError) as err:  # truncated zip, empty file, not a torch file
        raise ValueError(damaged.format(err or type(err).__name__)) from err
    warnings.warn(f"loading {path} with weights_only=False (trust_pickle=True): its pickled objects "
                  "were unpickled, which runs code that the file names", stacklevel=3)
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # any unpickling failure: the file is not what it claims
        raise ValueError(damaged.format(err)) from err


def _check_state(state: dict, model: nn.Module, path: Path) -> None:
    """Every tensor of ``model`` in ``state`` with its shape, and nothing else."""
    target = model.state_dict()
    missing = [k for k in target if k not in state]
    unexpected = [k for k in state if k not in target]
    if missing or unexpected:
        raise ValueError(f"{path} does not hold torchvision resnet18 weights: missing {missing[:5]}"
                         f"{' ...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
                         f"{' ...' if len(unexpected) > 5 else ''}")
    for name, tensor in target.items():
        if not isinstance(state[name], torch.Tensor) or state[name].shape != tensor.shape:
            found = tuple(state[name].shape) if isinstance(state[name], torch.Tensor) else type(state[name]).__name__
            raise ValueError(f"{path}: {name} is {found}, resnet18 needs {tuple(tensor.shape)}")


def load_places365_resnet18(path: str | os.PathLike | None = None, data_home=None,
                            trust_pickle: bool = False) -> nn.Module:
    """CSAIL's Places365 ResNet-18: torchvision ``resnet18(num_classes=365)``, eval mode.

    ``path`` defaults to ``DATA_HOME/weights/resnet18_places365.pth.tar``. The
    file is CSAIL's training checkpoint: a dict whose ``state_dict`` has the
    ``module.`` prefix of ``nn.DataParallel`` (a bare state dict is read too).
    It is read with ``weights_only=True``; a file that also pickles Python
    objects needs ``trust_pickle=True`` (see ``_read_checkpoint``).
    Input: (B, 3, H, W) ImageNet-normalised; output (B, 365) scene logits.
    """
    from torchvision.models import resnet18

    where = Path(path).expanduser() if path is not None else _weights_folder(data_home) / PLACES365_FILE
    how_to_get = f"download {PLACES365_URL} to {where}"
    if not where.is_file():
        raise FileNotFoundError(f"the Places365 ResNet-18 weights {where} do not exist; {how_to_get} "
                                "(or pass path=<file>)")
    saved = _read_checkpoint(where, trust_pickle, how_to_get)
    state = saved.get("state_dict", saved) if isinstance(saved, dict) else saved
    if not isinstance(state, dict):
        raise ValueError(f"{where} holds no state dict (found {type(state).__name__}); {how_to_get}")
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}
    fc = state.get("fc.weight")
    if isinstance(fc, torch.Tensor) and fc.ndim == 2 and fc.shape[0] != PLACES365_CLASSES:
        raise ValueError(f"{where}: its classifier fc has {fc.shape[0]} outputs, Places365 has "
                         f"{PLACES365_CLASSES}: not the Places365 checkpoint; {how_to_get}")
    model = resnet18(weights=None, num_classes=PLACES365_CLASSES)
    _check_state(state, model, where)
    model.load_state_dict(state)
    return model.eval()


def _check_sha256(path: Path, prefix: str, what: str = "torchvision's ResNet-18", url: str = IMAGENET_URL) -> None:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if not digest.hexdigest().startswith(prefix):
        raise ValueError(f"{path} fails its checksum (SHA-256 {digest.hexdigest()[:16]}..., expected {prefix}...): "
                         f"the file is damaged or not {what}; download {url} again")


def _published_path(name: str, file: str, url: str, megabytes: int, path, data_home) -> Path:
    """``path`` if given (it must exist), else torch.hub's cache, else ``DATA_HOME/weights/<file>``."""
    if path is not None:
        where = Path(path).expanduser()
        if not where.is_file():
            raise FileNotFoundError(f"the {name} weights {where} do not exist; download {url} ({megabytes} MB) there")
        return where
    candidates = [Path(torch.hub.get_dir()) / "checkpoints" / file, _weights_folder(data_home) / file]
    for where in candidates:
        if where.is_file():
            return where
    raise FileNotFoundError(
        f"torchvision's {name} weights are in none of {', '.join(map(str, candidates))}; download "
        f"{url} ({megabytes} MB) to one of them, or pass download=True where the network allows")


def _load_published(arch: str, name: str, file: str, url: str, prefix: str, megabytes: int, path, data_home,
                    download: bool) -> nn.Module:
    import torchvision.models

    try:
        where = _published_path(name, file, url, megabytes, path, data_home)
    except FileNotFoundError:
        if not download or path is not None:
            raise
        where = Path(torch.hub.get_dir()) / "checkpoints" / file
        where.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(where), hash_prefix=prefix)
    _check_sha256(where, prefix, f"torchvision's {name}", url)
    state = _read_checkpoint(where, trust_pickle=False, how_to_get=f"download {url} again")
    if not isinstance(state, dict):
        raise ValueError(f"{where} holds no state dict (found {type(state).__name__})")
    model = getattr(torchvision.models, arch)(weights=None)
    _check_state(state, model, where)
    model.load_state_dict(state)
    return model.eval()


def imagenet_resnet18_path(path: str | os.PathLike | None = None, data_home=None) -> Path:
    """Where the ImageNet ResNet-18 file is: ``path`` if given (it must exist), else torch.hub's
    cache (``<torch.hub.get_dir()>/checkpoints/resnet18-f37072fd.pth``, where torchvision
    downloads it), else ``DATA_HOME/weights/resnet18-f37072fd.pth``."""
    return _published_path("ImageNet ResNet-18", IMAGENET_FILE, IMAGENET_URL, 45, path, data_home)


def load_imagenet_resnet18(path: str | os.PathLike | None = None, data_home=None,
                           download: bool = False) -> nn.Module:
    """torchvision's ImageNet ResNet-18 (``IMAGENET1K_V1``), eval mode, checksummed.

    The file is found by ``imagenet_resnet18_path``; ``download=True`` fetches
    it into torch.hub's cache when it is nowhere (never otherwise). Its SHA-256
    must start with ``SHA256_PREFIX``. Input: (B, 3, H, W) ImageNet-normalised;
    output (B, 1000) ImageNet logits.
    """
    return _load_published("resnet18", "ResNet-18", IMAGENET_FILE, IMAGENET_URL, SHA256_PREFIX, 45, path, data_home,
                           download)


# The real-time saliency chapter's full encoder: torchvision's ImageNet ResNet-50 (IMAGENET1K_V1).
RESNET50_FILE = "resnet50-0676ba61.pth"
RESNET50_URL = "https://download.pytorch.org/models/resnet50-0676ba61.pth"
RESNET50_SHA256_PREFIX = "0676ba61"


def load_imagenet_resnet50(path: str | os.PathLike | None = None, data_home=None,
                           download: bool = False) -> nn.Module:
    """torchvision's ImageNet ResNet-50 (``IMAGENET1K_V1``), eval mode, checksummed; found as ResNet-18's is."""
    return _load_published("resnet50", "ResNet-50", RESNET50_FILE, RESNET50_URL, RESNET50_SHA256_PREFIX, 98, path,
                           data_home, download)
