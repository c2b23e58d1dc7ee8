"""Eps warm-up: the training attack's budget grows linearly from 0 over the first epochs."""
from __future__ import annotations

from dataclasses import replace

from .base import Callback


class EpsWarmup(Callback):
    """Before each step, set the batch maker's attack eps to ``eps * min(1, step / (epochs * steps per epoch))``.

    Training at eps 0.3 on MNIST from the first step can leave a fresh model
    stuck at chance; a linear ramp over ``epochs`` epochs avoids it. Works with
    any batch maker that has an ``attack`` with an ``eps`` field (``AttackBatches``).
    Records ``train_eps``, the eps of the epoch's last step.
    """

    def __init__(self, epochs: float):
        if epochs <= 0:
            raise ValueError(f"warm-up epochs must be positive, got {epochs}")
        self.epochs = epochs
        self.target = None

    def on_fit_start(self, engine) -> None:
        attack = getattr(engine.batches, "attack", None)
        if attack is None or not hasattr(attack, "eps"):
            raise ValueError(f"EpsWarmup needs a batch maker with an attack that has an eps, "
                             f"got {engine.batches!r}")
        self.target = attack.eps if self.target is None else self.target

    def on_step_start(self, engine) -> None:
        ramp = min(1.0, (engine.step + 1) / (self.epochs * engine.steps_per_epoch))
        engine.batches.attack = replace(engine.batches.attack, eps=self.target * ramp)

    def on_epoch_end(self, engine, record: dict) -> None:
        record["train_eps"] = engine.batches.attack.eps

    def on_fit_end(self, engine) -> None:
        engine.batches.attack = replace(engine.batches.attack, eps=self.target)

    def state_dict(self) -> dict:
        return {"target": self.target}

    def load_state_dict(self, state: dict) -> None:
        self.target = state["target"]
