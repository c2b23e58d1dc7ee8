"""One-cycle learning rate over the whole fit (torch's OneCycleLR), as Wong et al. train fast FGSM."""
from __future__ import annotations

import torch

from .base import Callback


class OneCycle(Callback):
    """Learning rate up to ``max_lr`` and back down over all the fit's steps; records ``lr`` per epoch."""

    def __init__(self, max_lr: float):
        if max_lr <= 0:
            raise ValueError(f"max_lr must be positive, got {max_lr}")
        self.max_lr = max_lr
        self.schedule = None

    def on_fit_start(self, engine) -> None:
        self.schedule = torch.optim.lr_scheduler.OneCycleLR(
            engine.optimizer, max_lr=self.max_lr, total_steps=engine.epochs * engine.steps_per_epoch)

    def on_step_end(self, engine) -> None:
        if self.schedule.last_epoch < self.schedule.total_steps:
            self.schedule.step()

    def on_epoch_end(self, engine, record: dict) -> None:
        record["lr"] = engine.optimizer.param_groups[0]["lr"]

    def state_dict(self) -> dict:
        return {"schedule": self.schedule.state_dict() if self.schedule is not None else None}

    def load_state_dict(self, state: dict) -> None:
        if state.get("schedule") is not None:
            self.schedule.load_state_dict(state["schedule"])
