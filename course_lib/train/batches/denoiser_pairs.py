"""Training pairs for a denoiser (HGD): adversarial images made against the fixed classifier, with their clean twins."""
from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from ..batch import Batch
from .base import BatchMaker
from .static import twins_taking_turns


class DenoiserPairs(BatchMaker):
    """Every training image paired with its adversarial twin under each of ``attacks``.

    HGD trains its denoiser on examples of several attacks and budgets made
    against the target classifier; here each attack recipe (e.g. FGSM at eps
    0.1, 0.2, 0.3 and PGD at 0.3) is run once, before training, against the
    submodule ``target`` of the model (``defences.Denoised.classifier``), and
    cached in ``cache_dir``. An element of ``attacks`` may also be a sequence
    of recipes (one attack at several budgets), which take turns
    (``static.twins_taking_turns``): each image gets one twin from the
    sequence, so the budgets cost one pass. The set holds each image once per
    element. Batches hold ``x`` = adversarial, ``clean`` = its twin.
    """

    def __init__(self, attacks, cache_dir=None, target: str = "classifier"):
        self.attacks = [list(a) if isinstance(a, (list, tuple)) else a for a in attacks]
        if not self.attacks or any(isinstance(a, list) and not a for a in self.attacks):
            raise ValueError("give at least one attack recipe in each place, e.g. [FGSMAttack(0.3)] or "
                             "[[FGSMAttack(0.06), FGSMAttack(0.3)], PGDAttack(0.3, 0.1, 5)]")
        self.cache_dir, self.target = cache_dir, target

    def dataset(self, engine, train: TensorDataset) -> TensorDataset:
        classifier = engine.model.get_submodule(self.target)
        x, y = train.tensors
        twins = [twins_taking_turns(classifier, train, a if isinstance(a, list) else [a], self.cache_dir,
                                    engine.attack_generator) for a in self.attacks]
        n = len(self.attacks)
        return TensorDataset(x.repeat(n, *[1] * (x.ndim - 1)), torch.cat(twins), y.repeat(n))

    def __call__(self, engine, loaded: tuple) -> Batch:
        clean, adv, y = loaded
        return Batch(x=adv, y=y, clean=clean)

    def __repr__(self) -> str:
        return f"DenoiserPairs({self.attacks!r}, target={self.target!r})"
