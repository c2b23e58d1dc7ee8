"""The course's ``Trainer``: its names and files, over the kit's one engine (``engine.py``)."""
from __future__ import annotations

from torch import nn
from torch.utils.data import Dataset

from .engine import Engine, load_history
from .objectives import CrossEntropy

HISTORY_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")


def output_name(dataset: str, model: str, optimizer: str) -> str:
    """The course's file stem for a run: ``{dataset}_{model}_{optimizer}``."""
    return f"{dataset}_{model}_{optimizer}"


class Trainer(Engine):
    """Train a classifier with ``criterion`` and track loss and accuracy on train, val and test.

    The course's interface to ``Engine``: accuracies are percentages in
    [0, 100], losses are means over samples.

    Args:
        model: maps (B, C, H, W) images to (B, n_classes) logits.
        optimizer: a ``torch.optim`` optimizer over ``model``'s parameters.
        criterion: a loss on (logits, labels), e.g. ``nn.CrossEntropyLoss()``.
        batch_size: images per step.
        train_dataset, validation_dataset, test_dataset: yield (image, label).
        device, seed, num_workers, progress: as for ``Engine``.
    """

    def __init__(self, model: nn.Module, optimizer, criterion: nn.Module, batch_size: int,
                 train_dataset: Dataset, validation_dataset: Dataset, test_dataset: Dataset, *,
                 device: str = "auto", seed: int = 0, num_workers: int = 0, progress: bool | None = None):
        super().__init__(model, optimizer, CrossEntropy(criterion), batch_size=batch_size, device=device,
                         seed=seed, eval_loss=criterion, num_workers=num_workers, progress=progress)
        self.criterion = criterion
        self.train_dataset = train_dataset
        self.validation_dataset = validation_dataset
        self.test_dataset = test_dataset

    def train_one_epoch(self, dataset: Dataset | None = None) -> tuple[float, float]:
        """One pass over the training set; returns (avg_loss, accuracy %)."""
        metrics = self.train_epoch(self.train_dataset if dataset is None else dataset)
        return metrics["loss"], metrics["acc"]

    def evaluate_model_on_dataloader(self, dataset: Dataset) -> tuple[float, float]:
        """Loss and accuracy on ``dataset`` without gradients; returns (avg_loss, accuracy %).

        The model is put in eval mode for the pass and given back in the mode it was in.
        """
        return self.evaluate(dataset)

    def run(self, epochs: int, output_dir=None, run_name: str = "run", resume: bool = True,
            checkpoint_dir=None) -> dict:
        """Train for ``epochs`` epochs in total and return the history (see ``Engine.fit``).

        Files: ``output_dir/{run_name}.json`` (history), and in ``checkpoint_dir``
        (default: ``output_dir``) ``{run_name}.pt`` (best validation accuracy)
        and ``{run_name}.state.pt`` (resume).
        """
        return self.fit(self.train_dataset, epochs, self.validation_dataset, self.test_dataset,
                        output_dir=output_dir, run_name=run_name, resume=resume,
                        checkpoint_dir=checkpoint_dir)


__all__ = ["HISTORY_KEYS", "Trainer", "load_history", "output_name"]
