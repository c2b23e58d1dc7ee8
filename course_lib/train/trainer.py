"""The course's Trainer: epochs of training with validation, test and checkpoints."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..config import get_device, show_progress
from ..io import atomic_torch_save, atomic_write_json

HISTORY_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")


def output_name(dataset: str, model: str, optimizer: str) -> str:
    """The course's file stem for a run: ``{dataset}_{model}_{optimizer}``."""
    return f"{dataset}_{model}_{optimizer}"


class Trainer:
    """Train a classifier and track loss and accuracy on train, val and test.

    Accuracies are percentages in [0, 100]; losses are means over samples.

    Args:
        model: maps (B, C, H, W) images to (B, n_classes) logits.
        optimizer: a ``torch.optim`` optimizer over ``model``'s parameters.
        criterion: a loss on (logits, labels), e.g. ``nn.CrossEntropyLoss()``.
        batch_size: images per step.
        train_dataset, validation_dataset, test_dataset: yield (image, label).
        device: "auto", "cpu" or "cuda[:N]"; the model is moved there.
        seed: fixes the shuffling order (and, through the RNG state saved in
            the resume file, the augmentation of a resumed run).
        num_workers: DataLoader worker processes.
        progress: show tqdm progress bars.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, criterion: nn.Module,
                 batch_size: int, train_dataset: Dataset, validation_dataset: Dataset,
                 test_dataset: Dataset, *, device: str = "auto", seed: int = 0,
                 num_workers: int = 0, progress: bool | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
        self.device = get_device(device)
        # channels_last: convolutions run 10-60% faster in this layout on CPUs (and on
        # GPUs with tensor cores); see benchmarks/simplenet_training.py.
        self.model = model.to(self.device, memory_format=torch.channels_last)
        self.optimizer = optimizer
        self.criterion = criterion
        self.batch_size = batch_size
        self.train_dataset = train_dataset
        self.validation_dataset = validation_dataset
        self.test_dataset = test_dataset
        self.seed = seed
        self.num_workers = num_workers
        self.progress = progress
        self.generator = torch.Generator().manual_seed(seed)

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle,
                          generator=self.generator if shuffle else None,
                          num_workers=self.num_workers)

    def _to_device(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.ndim == 4:
            return inputs.to(self.device, memory_format=torch.channels_last)
        return inputs.to(self.device)

    def train_one_epoch(self) -> tuple[float, float]:
        """One pass over the training set; returns (avg_loss, accuracy %)."""
        self.model.train()
        total_loss, correct, seen = 0.0, 0, 0
        bar = tqdm(self._loader(self.train_dataset, shuffle=True), desc="train",
                   leave=False, disable=not show_progress(self.progress))
        for inputs, targets in bar:
            inputs, targets = self._to_device(inputs), targets.to(self.device)
            self.optimizer.zero_grad()
            outputs = self.model(inputs)
            loss = self.criterion(outputs, targets)
            loss.backward()
            self.optimizer.step()
            total_loss += loss.item() * len(targets)
            correct += (outputs.argmax(1) == targets).sum().item()
            seen += len(targets)
            bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{100 * correct / seen:.1f}%")
        return total_loss / seen, 100.0 * correct / seen

    def evaluate_model_on_dataloader(self, dataset: Dataset) -> tuple[float, float]:
        """Loss and accuracy on ``dataset`` without gradients; returns (avg_loss, accuracy %).

        The model is put in eval mode for the pass and given back in the mode
        it was in.
        """
        was_training = self.model.training
        self.model.eval()
        total_loss, correct, seen = 0.0, 0, 0
        try:
            with torch.no_grad():
                for inputs, targets in tqdm(self._loader(dataset, shuffle=False), desc="eval",
                                            leave=False, disable=not show_progress(self.progress)):
                    inputs, targets = self._to_device(inputs), targets.to(self.device)
                    outputs = self.model(inputs)
                    total_loss += self.criterion(outputs, targets).item() * len(targets)
                    correct += (outputs.argmax(1) == targets).sum().item()
                    seen += len(targets)
        finally:
            self.model.train(was_training)
        if seen == 0:
            raise ValueError("cannot evaluate on an empty dataset")
        return total_loss / seen, 100.0 * correct / seen

    # -- whole runs ---------------------------------------------------------------------------

    def _fingerprint(self) -> dict:
        """What must match for a saved run to be resumed."""
        return {"batch_size": self.batch_size, "seed": self.seed,
                "optimizer": type(self.optimizer).__name__, "model": type(self.model).__name__,
                "sizes": [len(self.train_dataset), len(self.validation_dataset), len(self.test_dataset)]}

    def run(self, epochs: int, output_dir=None, run_name: str = "run", resume: bool = True) -> dict:
        """Train for ``epochs`` epochs in total; return the history.

        With ``output_dir``, writes (atomically, after every epoch):

        * ``{run_name}.json``: the history, one entry per epoch for each of
          ``train_loss, train_acc, val_loss, val_acc, test_loss, test_acc``;
        * ``{run_name}.pt``: ``{model, val_acc, test_acc, epoch}`` whenever the
          validation accuracy improves (the best model so far);
        * ``{run_name}.state.pt``: everything needed to resume. A run that was
          killed continues from its last finished epoch when called again
          with ``resume=True``; ``resume=False`` starts afresh.
        """
        if epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {epochs}")
        history = {key: [] for key in HISTORY_KEYS}
        best_val_acc, start_epoch = float("-inf"), 0
        out = Path(output_dir) if output_dir is not None else None
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            state_path = out / f"{run_name}.state.pt"
            if resume and state_path.exists():
                history, best_val_acc, start_epoch = self._load_state(state_path)
        for epoch in tqdm(range(start_epoch, epochs), desc="epochs", initial=start_epoch,
                          total=epochs, disable=not show_progress(self.progress)):
            train_loss, train_acc = self.train_one_epoch()
            val_loss, val_acc = self.evaluate_model_on_dataloader(self.validation_dataset)
            test_loss, test_acc = self.evaluate_model_on_dataloader(self.test_dataset)
            for key, value in zip(HISTORY_KEYS, (train_loss, train_acc, val_loss, val_acc,
                                                 test_loss, test_acc)):
                history[key].append(value)
            if out is None:
                continue
            if val_acc > best_val_acc:
                best_val_acc = val_acc
                atomic_torch_save(out / f"{run_name}.pt", {
                    "model": self.model.state_dict(), "val_acc": val_acc,
                    "test_acc": test_acc, "epoch": epoch})
            atomic_write_json(out / f"{run_name}.json", history)
            atomic_torch_save(state_path, {
                "fingerprint": self._fingerprint(), "epoch": epoch + 1, "history": history,
                "best_val_acc": best_val_acc, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
                "loader_rng": self.generator.get_state()})
        return history

    def _load_state(self, path: Path) -> tuple[dict, float, int]:
        state = torch.load(path, map_location=self.device, weights_only=False)
        if state["fingerprint"] != self._fingerprint():
            raise ValueError(
                f"{path} was saved by a different run ({state['fingerprint']}, now "
                f"{self._fingerprint()}); delete it or pass resume=False (CLI: --no-resume)")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        self.generator.set_state(state["loader_rng"])
        return state["history"], state["best_val_acc"], state["epoch"]


def load_history(path) -> dict:
    """Read a history JSON written by ``Trainer.run``, checking its keys."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"history file {path} does not exist; `course train` writes it")
    history = json.loads(path.read_text())
    missing = [k for k in HISTORY_KEYS if k not in history]
    if missing:
        raise ValueError(f"{path} is not a training history: missing {', '.join(missing)}")
    return history
