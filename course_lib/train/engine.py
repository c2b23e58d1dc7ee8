"""The kit's one training loop. Everything that differs between models plugs into it.

``Engine.fit`` runs epochs over a training set, evaluates on the validation
and test sets, keeps one history (a dict of per-epoch lists, written as JSON),
selects the best epoch, and, given an output folder, writes checkpoints that a
killed run resumes from. Three kinds of small objects change what an epoch does:

* an **objective** (``train/objectives/``): ``(model, batch) -> (loss, metrics)``;
* a **batch maker** (``train/batches/``): turns each loaded item (a dict with
  ``x``, ``y`` and named extras, or an ``(x, y)`` tuple: see ``batch.py``) into
  the ``Batch`` to train on (clean, Defendr's static augmentation, PGD, fast FGSM);
* a **metrics** object (``train/metrics/``): what ``measure`` records on the
  validation and test sets (default: loss and argmax accuracy); ``monitor``
  picks the one that selects the best epoch;
* **callbacks** (``train/callbacks/``): hooks at the start and end of the fit,
  of each epoch and of each step (eps warm-up, one-cycle lr, the
  catastrophic-overfitting guard).

Under ``torchrun`` (``train/distributed.py``) the same fit runs on every
process: the model is wrapped in ``DistributedDataParallel``, each process
trains on its shard of every global batch of ``batch_size`` (the effective
batch), evaluation sums its counts over the processes, and only rank 0 writes
the history and checkpoints while the others wait for it.

Randomness comes from generators the run owns (``engine.generator`` shuffles
the data, ``engine.attack_generator`` draws attacks' random starts), seeded
from ``seed``; the engine never reseeds torch's global RNG. Data augmentation
transforms that draw from the global RNG are made repeatable across a resume
by saving and restoring its state with the checkpoint.
"""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..config import get_device, show_progress
from ..io import atomic_torch_save, atomic_write_json
from .batch import Batch, loaded_to
from .distributed import EpochShards, barrier, processes, shard_of_each_example, sum_over_processes
from .metrics import Accuracy


def place(model: nn.Module, device: torch.device, channels_last: bool = True) -> nn.Module:
    """Move ``model`` to ``device`` in place, its 4-D weights channels-last when asked.

    The engine trains in this layout, and the zoo loads a finished model in it,
    so a loaded model computes exactly what the built one measured. On the CPU
    it is also the faster layout for small convolutional nets: ``benchmarks/attacks.py``
    times the kit's PGD on MnistCNN in both layouts ("channels-last model" row).
    """
    return model.to(device, memory_format=torch.channels_last) if channels_last else model.to(device)


class Engine:
    """Train ``model`` with ``optimizer`` on an objective, a batch maker and callbacks.

    Args:
        objective: ``(model, batch) -> (loss, metrics)``; default cross-entropy.
        batches: a batch maker; default the clean batches as loaded.
        callbacks: objects with any of the hooks of ``callbacks.Callback``.
        batch_size: examples per step (the effective batch: under torchrun, each of
            N processes takes ``batch_size / N`` of them).
        device: "auto", "cpu" or "cuda[:N]"; the model moves there.
        seed: seeds the run's own generators (shuffling, attacks' random starts).
        channels_last: store 4-D inputs and weights channels-last (faster
            convolutions on CPUs and tensor cores; ``benchmarks/`` measures it).
        bf16: bfloat16 autocast for the forward passes, on CUDA only.
        metrics: what ``measure`` computes on a set; default ``Accuracy(eval_loss)``
            (``loss`` and ``acc``).
        monitor: history key whose best value marks the best epoch ("val_acc"
            by default; best is highest, or lowest for the names the metrics
            object lists in ``lower_is_better``; None: the last epoch is the best).
        eval_loss: ``(logits, labels) -> loss`` of the default metrics; default cross-entropy.
        num_workers: DataLoader worker processes.
        progress: show tqdm progress bars (None: follow ``COURSE_PROGRESS``).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, objective=None, batches=None,
                 callbacks=(), *, batch_size: int = 64, device: str | torch.device = "auto", seed: int = 0,
                 channels_last: bool = True, bf16: bool = False, monitor: str | None = "val_acc",
                 eval_loss=None, metrics=None, num_workers: int = 0, progress: bool | None = None):
        from .batches import CleanBatches
        from .objectives import CrossEntropy

        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
        self.procs = processes()
        if batch_size % self.procs.world:
            raise ValueError(f"batch_size {batch_size} (the effective batch) must be a multiple of the "
                             f"{self.procs.world} processes; change the batch size or --nproc_per_node")
        self.device = device if isinstance(device, torch.device) else get_device(device)
        if self.procs.several and self.device.type == "cuda":
            self.device = torch.device("cuda", self.procs.local_rank)  # one GPU per process
        self.channels_last = channels_last
        self.model = place(model, self.device, channels_last)
        # what the objective trains: the model itself, or its DistributedDataParallel wrapper
        self.train_model = self.model
        if self.procs.several:
            from torch.nn.parallel import DistributedDataParallel

            if self.device.type == "cuda":  # batch statistics over the global batch (CUDA-only in torch)
                nn.SyncBatchNorm.convert_sync_batchnorm(self.model)  # swaps the children in place
            self.train_model = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.optimizer = optimizer
        self.objective = objective if objective is not None else CrossEntropy()
        self.batches = batches if batches is not None else CleanBatches()
        self.callbacks = list(callbacks)
        self.batch_size = batch_size
        self.seed = seed
        self.bf16 = bf16 and self.device.type == "cuda"
        self.monitor = monitor
        if metrics is not None and eval_loss is not None:
            raise ValueError("pass either metrics or eval_loss (the default metrics' loss), not both")
        self.metrics = metrics if metrics is not None else Accuracy(eval_loss)
        self.num_workers = num_workers
        self.progress = progress
        self.generator = torch.Generator().manual_seed(seed)
        self.attack_generator = torch.Generator(device=self.device).manual_seed(seed + 1)
        # State of the current fit, read by callbacks.
        self.epoch = 0            # index of the epoch being trained (0-based)
        self.epochs = 0           # epochs of the whole fit
        self.step = 0             # optimizer steps taken in this fit
        self.steps_per_epoch = 0
        self.history: dict[str, list] = {}
        self.best_epoch = -1      # 0-based index into the history
        self.best_value: float | None = None
        self.stop = False         # a callback sets it to end the fit after this epoch

    # -- one epoch ------------------------------------------------------------------------

    def _loader(self, dataset: Dataset, shuffle: bool, drop_last: bool = False) -> DataLoader:
        if not self.procs.several:
            return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle, drop_last=drop_last,
                              generator=self.generator if shuffle else None, num_workers=self.num_workers)
        if shuffle:  # the epoch's order from the run's generator, in the same state on every process
            sampler = EpochShards(len(dataset), self.procs.rank, self.procs.world, self.generator)
        else:  # evaluation: every example on exactly one process
            sampler = shard_of_each_example(len(dataset), self.procs)
        return DataLoader(dataset, batch_size=self.batch_size // self.procs.world, sampler=sampler,
                          drop_last=drop_last, generator=self.generator if shuffle else None,
                          num_workers=self.num_workers)

    def _steps_per_epoch(self, train: Dataset, drop_last: bool) -> int:
        if not self.procs.several:
            return len(self._loader(train, shuffle=False, drop_last=drop_last))
        share, local = -(-len(train) // self.procs.world), self.batch_size // self.procs.world
        return share // local if drop_last else -(-share // local)

    def to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        """Move a tensor to the run's device (channels-last when it is a 4-D image batch)."""
        if self.channels_last and tensor.ndim == 4:
            return tensor.to(self.device, memory_format=torch.channels_last)
        return tensor.to(self.device)

    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.bf16)

    def _call(self, hook: str, *args) -> None:
        for callback in self.callbacks:
            method = getattr(callback, hook, None)
            if method is not None:
                method(self, *args)

    def train_epoch(self, dataset: Dataset) -> dict[str, float]:
        """One pass over ``dataset``; returns the mean loss and metrics, e.g. {"loss", "acc"}.

        Metrics are means over examples; accuracies are percentages.
        """
        self.model.train()
        sums, seen = {}, 0
        loader = self._loader(dataset, shuffle=True, drop_last=getattr(self.objective, "drop_last", False))
        bar = tqdm(loader, desc="train", leave=False, disable=not show_progress(self.progress) or not self.procs.main)
        for loaded in bar:
            self._call("on_step_start")
            batch = self.batches(self, loaded_to(loaded, self.to_device))
            with self._autocast():
                loss, metrics = self.objective(self.train_model, batch)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.step += 1
            self._call("on_step_end")
            n = len(batch.y)
            for key, value in {"loss": loss.item(), **metrics}.items():
                sums[key] = sums.get(key, 0.0) + float(value) * n
            seen += n
            bar.set_postfix({k: f"{v / seen:.3g}" for k, v in sums.items()})
        totals = sum_over_processes({**sums, " seen": seen}, self.device)
        seen = totals.pop(" seen")
        if seen == 0:
            raise ValueError(f"the training set gives no full batch of {self.batch_size}; "
                             "use a smaller batch_size or more data")
        return {key: value / seen for key, value in totals.items()}

    def measure(self, dataset: Dataset) -> dict[str, float]:
        """The metrics object's values on ``dataset`` (means over its examples), e.g. {"loss", "acc"}.

        In eval mode without gradients, on the clean items as loaded (extras
        included); the model's mode is restored.
        """
        was_training = self.model.training
        self.model.eval()
        sums, seen = {}, 0
        try:
            with torch.no_grad(), self._autocast():
                for loaded in tqdm(self._loader(dataset, shuffle=False), desc="eval", leave=False,
                                   disable=not show_progress(self.progress)):
                    batch = Batch.from_loaded(loaded_to(loaded, self.to_device))
                    for key, value in self.metrics(self.model, batch).items():
                        sums[key] = sums.get(key, 0.0) + float(value) * len(batch)
                    seen += len(batch)
        finally:
            self.model.train(was_training)
        totals = sum_over_processes({**sums, " seen": seen}, self.device)  # each process's shard
        seen = totals.pop(" seen")
        if seen == 0:
            raise ValueError("cannot evaluate on an empty dataset")
        return {key: value / seen for key, value in totals.items()}

    def evaluate(self, dataset: Dataset) -> tuple[float, float]:
        """(mean loss, accuracy %) on ``dataset``: the course's pair, from metrics that give both."""
        values = self.measure(dataset)
        if not {"loss", "acc"} <= set(values):
            raise ValueError(f"evaluate returns (loss, acc), but this engine's metrics ({self.metrics!r}) "
                             f"give {', '.join(values)}; call measure(dataset) for them")
        return values["loss"], values["acc"]

    # -- whole runs ---------------------------------------------------------------------------

    def fit(self, train: Dataset, epochs: int, val: Dataset | None = None, test: Dataset | None = None,
            output_dir=None, run_name: str = "run", resume: bool = True, restore_best: bool = False,
            checkpoint_dir=None) -> dict:
        """Train for ``epochs`` epochs in total; return the history.

        The history maps each key to one value per epoch: ``train_loss``,
        ``train_acc`` (and the objective's other metrics as ``train_<name>``),
        ``val_<name>`` and ``test_<name>`` for each of the metrics object's
        values (default: ``loss`` and ``acc``) when those sets are given, what callbacks add (e.g. ``holdout_pgd_acc``), and
        ``seconds`` (wall time since the fit started, cumulative; it includes the
        batch maker's preparation, such as making a static adversarial set).

        With ``output_dir``, after every epoch (each write atomic):

        * ``{run_name}.json``: the history;
        * ``{run_name}.pt``: ``{model, epoch, val_acc, test_acc, <monitor>}``
          whenever the monitored value improves (the best model so far);
        * ``{run_name}.state.pt``: everything needed to resume. A killed run
          continues from its last finished epoch when called again with
          ``resume=True``; ``resume=False`` starts afresh.

        ``checkpoint_dir``: where the two ``.pt`` files go instead of
        ``output_dir`` (the course project keeps histories in ``out/`` and
        checkpoints in ``checkpoints/``).

        ``restore_best``: load the best epoch's weights into the model at the end.
        """
        if epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {epochs}")
        began = time.perf_counter()  # the batch maker's dataset (e.g. stored adversarial examples) counts
        train = self.batches.dataset(self, train)
        self.epochs, self.step, self.stop = epochs, 0, False
        self.history, self.best_epoch, self.best_value = {}, -1, None
        drop_last = getattr(self.objective, "drop_last", False)
        self.steps_per_epoch = self._steps_per_epoch(train, drop_last)
        fingerprint = self._fingerprint(train, val, test)  # before callbacks change the plug-ins
        val, test = (self.batches.eval_dataset(self, d) if d is not None else None for d in (val, test))
        self._call("on_fit_start")
        out = Path(output_dir) if output_dir is not None else None
        if checkpoint_dir is not None and out is None:
            raise ValueError("checkpoint_dir needs output_dir (where the history JSON goes)")
        ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else out
        start_epoch, elapsed = 0, 0.0
        best_state = None
        if out is not None:
            if self.procs.main:
                out.mkdir(parents=True, exist_ok=True)
                ckpt.mkdir(parents=True, exist_ok=True)
            state_path = ckpt / f"{run_name}.state.pt"
            if resume and state_path.exists():
                start_epoch, elapsed = self._load_state(state_path, fingerprint)
                if restore_best and (ckpt / f"{run_name}.pt").exists():
                    best_state = torch.load(ckpt / f"{run_name}.pt", map_location=self.device)["model"]
        start = began - elapsed
        epochs_bar = tqdm(range(start_epoch, epochs), desc="epochs", initial=start_epoch, total=epochs,
                          disable=not show_progress(self.progress) or not self.procs.main)
        for epoch in epochs_bar:
            if self.stop:
                break
            self.epoch = epoch
            self._call("on_epoch_start")
            record = {f"train_{k}": v for k, v in self.train_epoch(train).items()}
            for name, dataset in (("val", val), ("test", test)):
                if dataset is not None:
                    record.update({f"{name}_{key}": value for key, value in self.measure(dataset).items()})
            self._call("on_epoch_end", record)
            record["seconds"] = time.perf_counter() - start
            for key, value in record.items():
                self.history.setdefault(key, []).append(value)
            improved = self._select_best(record, epoch)
            if improved and restore_best:
                best_state = copy.deepcopy(self.model.state_dict())
            if out is not None:
                if self.procs.main:  # the one writer; the others wait, so a resume finds its epoch
                    self._save(out, ckpt, run_name, record, epoch, improved, fingerprint)
                barrier()
        self._call("on_fit_end")
        if restore_best and best_state is not None:
            self.model.load_state_dict(best_state)
        return self.history

    def _select_best(self, record: dict, epoch: int) -> bool:
        if not self.monitor:
            self.best_value, self.best_epoch = float(epoch), epoch
            return True
        if self.monitor not in record:
            raise ValueError(f"monitor {self.monitor!r} is not among this run's metrics "
                             f"({', '.join(record)}); pass a validation set, plug in metrics that give it, "
                             "or pass monitor=None")
        name = self.monitor.split("_", 1)[1] if self.monitor.startswith(("val_", "test_")) else self.monitor
        value = record[self.monitor]
        if self.metrics.improves(name, value, self.best_value):
            self.best_value, self.best_epoch = value, epoch
            return True
        return False

    def _fingerprint(self, train, val, test) -> dict:
        """What must match for a saved run to be resumed."""
        return {"batch_size": self.batch_size, "seed": self.seed, "model": type(self.model).__name__,
                "optimizer": type(self.optimizer).__name__, "objective": repr(self.objective),
                "batches": repr(self.batches), "metrics": repr(self.metrics), "monitor": self.monitor,
                "sizes": [len(d) if d is not None else None for d in (train, val, test)]}

    def _save(self, out: Path, ckpt: Path, run_name: str, record: dict, epoch: int, improved: bool,
              fingerprint: dict) -> None:
        if improved:
            atomic_torch_save(ckpt / f"{run_name}.pt", {
                "model": self.model.state_dict(), "epoch": epoch, "val_acc": record.get("val_acc"),
                "test_acc": record.get("test_acc"),
                **({self.monitor: record[self.monitor]} if self.monitor else {})})
        atomic_write_json(out / f"{run_name}.json", self.history)
        atomic_torch_save(ckpt / f"{run_name}.state.pt", {
            "fingerprint": fingerprint, "epoch": epoch + 1,
            "seconds": record["seconds"], "stop": self.stop, "step": self.step,
            "history": self.history, "best_epoch": self.best_epoch, "best_value": self.best_value,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "callbacks": [cb.state_dict() if hasattr(cb, "state_dict") else {} for cb in self.callbacks],
            "generator": self.generator.get_state(), "attack_generator": self.attack_generator.get_state(),
            "torch_rng": torch.get_rng_state()})

    def _load_state(self, path: Path, fingerprint: dict) -> tuple[int, float]:
        state = torch.load(path, map_location=self.device, weights_only=False)
        if state["fingerprint"] != fingerprint:
            raise ValueError(
                f"{path} was saved by a different run ({state['fingerprint']}, now "
                f"{fingerprint}); delete it or pass resume=False (CLI: --no-resume)")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        for callback, saved in zip(self.callbacks, state["callbacks"]):
            if hasattr(callback, "load_state_dict"):
                callback.load_state_dict(saved)
        self.generator.set_state(state["generator"])
        self.attack_generator.set_state(state["attack_generator"])
        torch.set_rng_state(state["torch_rng"])  # augmentation transforms draw from it
        self.history, self.step, self.stop = state["history"], state["step"], state["stop"]
        self.best_epoch, self.best_value = state["best_epoch"], state["best_value"]
        return state["epoch"], state["seconds"]


def load_history(path) -> dict:
    """Read a history JSON written by ``Engine.fit`` / ``Trainer.run``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"history file {path} does not exist; `course train` writes it")
    history = json.loads(path.read_text())
    missing = [k for k in ("train_loss", "train_acc") if k not in history]
    if missing:
        raise ValueError(f"{path} is not a training history: missing {', '.join(missing)}")
    return history
