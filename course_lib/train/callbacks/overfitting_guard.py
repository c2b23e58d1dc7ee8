"""Wong et al.'s guard against catastrophic overfitting: PGD accuracy of a held-out batch after every epoch."""
from __future__ import annotations

import torch

from ...evaluation import accuracy, pgd_accuracy
from .base import Callback


class OverfittingGuard(Callback):
    """Measure the held-out PGD accuracy each epoch; stop when it collapses, keep the best epoch.

    Records ``holdout_clean_acc`` and ``holdout_pgd_acc`` (``steps`` steps of
    ``step``, default eps / 4, random start from a generator seeded the same
    way every epoch, so epochs compare). Makes ``holdout_pgd_acc`` the
    engine's measure of the best epoch, and stops the fit when it falls more
    than ``drop`` points below its best. Fit with ``restore_best=True`` to get
    the best epoch's weights back.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int = 10,
                 step: float | None = None, drop: float = 20.0, seed: int = 0):
        self.x, self.y, self.eps, self.steps = x, y, eps, steps
        self.step = step if step is not None else eps / 4
        self.drop, self.seed = drop, seed

    def on_fit_start(self, engine) -> None:
        engine.monitor = "holdout_pgd_acc"

    def measure(self, model, device) -> tuple[float, float]:
        """(clean, PGD) accuracy in % of ``model`` on the held-out set, as each epoch measures it.

        Call it on the starting model to get a run's epoch 0 on the same scale.
        """
        x, y = self.x.to(device), self.y.to(device)
        generator = torch.Generator(device=device).manual_seed(self.seed)
        return accuracy(model, x, y), pgd_accuracy(model, x, y, self.eps, self.steps, self.step,
                                                   generator=generator)

    def on_epoch_end(self, engine, record: dict) -> None:
        record["holdout_clean_acc"], record["holdout_pgd_acc"] = self.measure(engine.model, engine.device)
        if engine.best_value is not None and record["holdout_pgd_acc"] < engine.best_value - self.drop:
            engine.stop = True
