"""Defendr's static augmentation: adversarial examples made once, before training, and stored."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from ...io import atomic_torch_save
from ..batch import Batch
from .base import BatchMaker


def _digest(tensors) -> str:
    h = hashlib.sha256()
    for key, value in tensors:
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def adversarial_dataset(model: nn.Module, dataset: TensorDataset, attack, cache_dir=None,
                        batch_size: int = 256, generator: torch.Generator | None = None) -> TensorDataset:
    """The adversarial twin of every example of ``dataset`` under ``attack``, with the true labels.

    ``attack`` is an attack recipe of ``course_lib.attacks`` (e.g. ``PGDAttack(0.3, 0.1, 3)``).
    With ``cache_dir`` the result is stored there under a hash of the model's
    weights, the attack's class and every one of its settings, and the data,
    and read back next time.
    """
    x, y = dataset.tensors
    path = None
    if cache_dir is not None:
        key = json.dumps({"weights": _digest(model.state_dict().items()), "attack": type(attack).__name__,
                          "settings": asdict(attack), "data": _digest([("x", x), ("y", y)])}, sort_keys=True)
        path = Path(cache_dir) / f"adv_{type(attack).__name__}_{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"
        if path.exists():
            saved = torch.load(path)
            return TensorDataset(saved["x"], saved["y"])
    device = next(model.parameters()).device
    adv_x = torch.cat([attack(model, xb.to(device), yb.to(device), generator=generator).cpu()
                       for xb, yb in zip(x.split(batch_size), y.split(batch_size))])
    if path is not None:
        atomic_torch_save(path, {"x": adv_x, "y": y.cpu()})
    return TensorDataset(adv_x, y.cpu())


def twins_taking_turns(model: nn.Module, dataset: TensorDataset, attacks, cache_dir=None,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """One adversarial twin per example, the attacks taking turns: example ``i`` gets ``attacks[i % k]``'s.

    Defendr's several eps levels at the cost of one: every level covers a k-th
    of the set. Each level's part is an ``adversarial_dataset`` (stored in
    ``cache_dir``). Returns (N, ...) twins in the order of ``dataset``.
    """
    x, y = dataset.tensors
    adv_x = torch.empty_like(x)
    for level, attack in enumerate(attacks):
        rows = torch.arange(level, len(x), len(attacks))
        part = adversarial_dataset(model, TensorDataset(x[rows], y[rows]), attack, cache_dir, generator=generator)
        adv_x[rows] = part.tensors[0].to(adv_x.dtype)
    return adv_x


class StaticAugmentation(BatchMaker):
    """Defendr's augmentation: the training set plus its adversarial examples, made once.

    At the start of the fit, the attack is run against the model as it is
    then (the trained baseline, when fine-tuning) on every training example
    (cached in ``cache_dir``). ``attack`` is one attack recipe, or a sequence of
    them (Defendr's several eps levels): with k recipes, example ``i`` gets its
    twin from recipe ``i % k``, so the set still doubles, every level covers
    a k-th of it, and each example keeps one twin. ``paired=False`` trains on
    the clean and the adversarial examples as one set of twice the size;
    ``paired=True`` keeps each clean example with its own stored twin
    (``batch.clean``), for ALP.
    """

    def __init__(self, attack, cache_dir=None, paired: bool = False):
        self.attacks = tuple(attack) if isinstance(attack, (list, tuple)) else (attack,)
        if not self.attacks:
            raise ValueError("StaticAugmentation needs at least one attack")
        self.cache_dir, self.paired = cache_dir, paired

    def dataset(self, engine, train: TensorDataset) -> TensorDataset:
        x, y = train.tensors
        adv_x = twins_taking_turns(engine.model, train, self.attacks, self.cache_dir, engine.attack_generator)
        if self.paired:
            return TensorDataset(x, adv_x, y)
        return TensorDataset(torch.cat([x, adv_x]), torch.cat([y, y]))

    def __call__(self, engine, loaded: tuple) -> Batch:
        if len(loaded) == 3:
            return Batch(x=loaded[1], y=loaded[2], clean=loaded[0])
        return Batch(x=loaded[0], y=loaded[1])

    def __repr__(self) -> str:
        attacks = self.attacks[0] if len(self.attacks) == 1 else list(self.attacks)
        return f"StaticAugmentation({attacks!r}, paired={self.paired})"
