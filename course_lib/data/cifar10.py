"""CIFAR-10 through torchvision: the contextual-fusion chapter's object-centric dataset (``full`` profile).

torchvision reads the python-pickle batches under ``DATA_HOME/cifar10/cifar-10-batches-py/``
and checks the MD5 of every batch file (and of the archive it downloads).
Nothing downloads unless the settings say ``download=True``; a missing or
damaged dataset is an error that says how to get it.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"  # 163 MB, MD5 c58f30108f718f92721af3b95e74349a
N_VAL = 1000  # training images held out for validation (the paper trains on all 50,000)
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class Cifar10Dataset(Dataset):
    """CIFAR-10 images as dicts: ``x`` (3, S, S) float in [0, 1], ``y`` int64 label 0-9.

    ``images``: (N, 32, 32, 3) uint8, as torchvision's ``CIFAR10.data``.
    ``size``: None keeps 32 x 32; an int S resizes bilinearly (the paper feeds 224 x 224).
    ``classes``: the names of labels 0-9.
    """

    classes = CLASSES

    def __init__(self, images: np.ndarray, labels, size: int | None = None):
        if images.ndim != 4 or images.shape[1:] != (32, 32, 3) or images.dtype != np.uint8:
            raise ValueError(f"CIFAR-10 images are (N, 32, 32, 3) uint8, got {images.shape} {images.dtype}")
        if size is not None and (int(size) != size or size < 1):
            raise ValueError(f"size is an image side in pixels (a positive int) or None, got {size!r}")
        self.images = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
        if len(self.labels) != len(self.images):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        self.size = size

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        x = self.images[index].float() / 255.0
        if self.size is not None and self.size != 32:
            x = F.interpolate(x[None], size=(self.size, self.size), mode="bilinear",
                              align_corners=False, antialias=True)[0].clamp(0, 1)
        return {"x": x, "y": self.labels[index]}


def load_cifar10(root, train: bool, download: bool = False):
    """torchvision's ``CIFAR10`` under ``root``; a missing or damaged set is a FileNotFoundError."""
    from torchvision.datasets import CIFAR10

    try:
        return CIFAR10(root, train=train, download=download)
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted. You can use download=True"
        raise FileNotFoundError(
            f"CIFAR-10 is missing or damaged in {root / CIFAR10.base_folder} ({err}). Run with the "
            f"setting download=True where the network allows, or download {URL} and unpack it in "
            f"{root} (it makes {CIFAR10.base_folder}/); torchvision checks each file's MD5") from err


def cifar10_splits(profile, settings: dict, data_home=None, seed: int = 0):
    """Zoo data source: CIFAR-10's 50,000 training images less ``n_val``, which are validation; the 10,000 test.

    ``settings``: ``download`` (default False), ``size`` (None or pixels),
    ``n_val`` (default ``N_VAL``; drawn from the training set by a permutation
    seeded with ``seed``). ``profile`` is not read: CIFAR-10 is the full profile's.
    """
    from ..config import data_home as resolve_home
    from .splits import Splits

    root = resolve_home(data_home) / "cifar10"
    download = settings.get("download", False)
    size = settings.get("size")
    n_val = settings.get("n_val", N_VAL)
    train, test = (load_cifar10(root, part, download=download) for part in (True, False))
    if not 0 < n_val < len(train.data):
        raise ValueError(f"n_val must be between 1 and {len(train.data) - 1}, got {n_val}")
    labels = np.asarray(train.targets)
    order = np.random.default_rng(seed).permutation(len(labels))
    kept, held = np.sort(order[n_val:]), np.sort(order[:n_val])
    parts = (Cifar10Dataset(train.data[kept], labels[kept], size),
             Cifar10Dataset(train.data[held], labels[held], size),
             Cifar10Dataset(test.data, test.targets, size))
    return Splits(*parts, source=(f"torchvision CIFAR-10 from {root} ({len(parts[0])} train / {len(parts[1])} "
                                  f"validation / {len(parts[2])} test)"),
                  identity={"cifar10": str(root), "md5": [md5 for _, md5 in train.train_list + test.test_list],
                            "n_val": n_val, "seed": seed, "size": size, "sizes": [len(p) for p in parts]})
