"""Adversarial batches made on the fly against the current weights: PGD training, fast FGSM training."""
from __future__ import annotations

from ..batch import Batch
from .base import BatchMaker


class AttackBatches(BatchMaker):
    """Replace each batch by its adversarial examples, with the clean images kept for pairing losses.

    ``attack`` is an attack recipe of ``course_lib.attacks`` (``PGDAttack``
    for Madry et al.'s PGD training, ``FastFGSMAttack`` for Wong et al.'s fast
    FGSM); like every attack of the kit it runs with the model frozen and in
    eval mode, and draws its random start from the run's ``attack_generator``.
    The eps warm-up callback replaces ``attack`` by one with a smaller eps.
    """

    def __init__(self, attack):
        self.attack = attack

    def __call__(self, engine, loaded) -> Batch:
        batch = Batch.from_loaded(loaded)
        batch.clean = batch.x
        batch.x = self.attack(engine.model, batch.x, batch.y, generator=engine.attack_generator)
        return batch

    def __repr__(self) -> str:
        return f"AttackBatches({self.attack!r})"
