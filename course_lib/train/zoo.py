"""The model zoo's machinery: every registered recipe trained once by the engine and cached.

This module knows only the recipes that have been registered (``recipes.RECIPES``);
it never imports ``course_lib.models``, which sits above it. Users import
``course_lib.zoo``, which registers every model of the kit and re-exports these
functions. ``trained_model("mnist_pgd")`` returns the model in eval mode, mapping pixels in
[0, 1] to logits (for the course's face detectors, trained on normalised images
as in the course project, the normalisation is put inside; ``build(...).model``
is the bare detector that takes what its ``splits`` give). On a cache miss it trains the model with its recipe (see
``recipes.py``) into ``DATA_HOME/models/<name>_<key>/``; a killed build
resumes from its last finished epoch; later calls load the finished run. The
folder holds the history (JSON), the best checkpoint, the resume state, and
``result.json``: the build's time and the recipe's test metrics.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..config import data_home, default_data_home, get_device, get_profile
from ..evaluation import accuracy
from ..io import atomic_write_json
from .distributed import barrier, processes
from ..pixel_input import PixelInput
from .engine import Engine, place
from .optimizers import make_optimizer
from .recipes import RECIPES, Plan, Recipe, code_digest


@dataclass
class ZooModel:
    """A built zoo model with everything its build recorded."""

    name: str
    model: nn.Module            # eval mode, on the requested device; takes the inputs ``splits`` gives
    history: dict               # per-epoch lists (see Engine.fit)
    metrics: dict               # the recipe's test metrics, computed once after training
    seconds: float              # training time of the build (the fit only)
    eval_seconds: float         # time the metrics took
    settings: dict
    splits: object              # the data the model was trained and tested on (data.Splits)
    folder: Path
    built_now: bool             # False when it was loaded from the cache
    input_normalisation: tuple | None = None  # (mean, std) of the inputs ``model`` expects, if normalised

    @property
    def pixel_model(self) -> nn.Module:
        """The model taking pixels in [0, 1]: ``model`` itself, or ``model`` behind its normalisation."""
        if self.input_normalisation is None:
            return self.model
        mean, std = self.input_normalisation
        return PixelInput(self.model, mean, std).to(next(self.model.parameters()).device).eval()


def get_recipe(name: str) -> Recipe:
    """The recipe registered under ``name``."""
    if name not in RECIPES:
        hint = ("" if RECIPES else " (no recipe is registered yet: import course_lib.zoo, which "
                "registers the kit's models, instead of course_lib.train.zoo)")
        raise ValueError(f"no zoo model named {name!r}{hint}; valid names: {', '.join(sorted(RECIPES))}")
    return RECIPES[name]


def zoo_names() -> list[str]:
    """Names of every registered zoo model, sorted."""
    return sorted(RECIPES)


def _plan(recipe: Recipe, settings: dict, splits, home: Path) -> Plan:
    return recipe.plan(settings, splits, home) if recipe.plan is not None else Plan()


def run_folder(name: str, profile="quick", data_home_path=None, seed: int = 0) -> tuple[Path, object]:
    """(``DATA_HOME/models/<name>_<key>``, splits): the cache folder of this exact build, and its data.

    The key hashes the recipe's settings, the seed, the data's identity, the
    torch version, and the source of the course_lib modules the recipe uses.
    """
    recipe = get_recipe(name)
    profile = get_profile(profile) if isinstance(profile, str) else profile
    home = data_home(data_home_path)
    settings = recipe.settings(profile)
    splits = recipe.data(profile, settings, home, seed)
    with torch.random.fork_rng():  # building only to name the classes involved
        model = _new_model(recipe, settings, home)
    plan = _plan(recipe, settings, splits, home)
    code, _ = code_digest(recipe.build, recipe.data, recipe.plan, recipe.evaluate, model, Engine,
                          plan.objective, plan.batches, plan.metrics, *plan.callbacks)
    start = run_folder(recipe.start_from, profile, data_home_path, seed)[0].name if recipe.start_from else None
    parts = {part: run_folder(zoo_name, profile, data_home_path, seed)[0].name
             for part, zoo_name in recipe.parts(settings).items()}
    identity = {"name": name, "settings": settings, "seed": seed, "data": splits.identity,
                "code": code, "torch": torch.__version__, "start_from": start}
    if parts:  # only recipes that have components add the key, so the others keep their folders
        identity["components"] = parts
    key = json.dumps(identity, sort_keys=True, default=str)
    return home / "models" / f"{name}_{hashlib.sha256(key.encode()).hexdigest()[:16]}", splits


def is_built(name: str, profile="quick", data_home_path=None, seed: int = 0) -> bool:
    """Whether the cache holds a finished build of ``name``."""
    return (run_folder(name, profile, data_home_path, seed)[0] / "result.json").is_file()


@contextmanager
def _build_lock(folder: Path):
    """Hold an exclusive lock on ``folder`` so that two processes never train the same model at once.

    The second one waits, then finds the finished build and loads it. (POSIX
    ``flock``; where it does not exist, as on Windows, there is no lock.)
    """
    try:
        import fcntl
    except ImportError:  # Windows: no flock; concurrent builds of one model are the user's to avoid
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build(name: str, profile="quick", data_home=None, device: str = "auto", seed: int = 0,
          progress: bool | None = None) -> ZooModel:
    """Train ``name`` (or load its finished build) and return a ``ZooModel``.

    Training runs in a forked RNG (the caller's global RNG is left as it was);
    a build that was killed resumes from its last finished epoch; a second
    process asking for the same build waits for the first and loads its result.
    Under torchrun every process trains (``train/distributed.py``); rank 0
    holds the lock and writes the folder, the others wait for it and load.
    """
    recipe = get_recipe(name)
    folder, splits = run_folder(name, profile, data_home, seed)
    if (folder / "result.json").is_file():
        # A finished build never changes: read it without the lock, so that a zoo
        # others cannot write to (a class's shared folder, a grading sandbox) loads.
        return _build(recipe, name, folder, splits, profile, device, seed, progress)
    writable = next(p for p in (folder, *folder.parents) if p.exists())
    if not os.access(writable, os.W_OK):
        raise PermissionError(
            f"zoo model {name!r} ({profile}) is not built in {folder.parent} and this process cannot "
            f"write there; build it first as its owner: `course models build {name} --profile {profile} "
            f"--data-home {folder.parent.parent}`")
    if not processes().main:  # rank 0 holds the lock for the whole run; this process trains beside it
        return _build(recipe, name, folder, splits, profile, device, seed, progress)
    with _build_lock(folder):
        return _build(recipe, name, folder, splits, profile, device, seed, progress)


def _new_model(recipe: Recipe, settings: dict, home: Path) -> nn.Module:
    """``recipe.build(settings)`` with ``home`` as the default data home, where its weight files are looked for."""
    with default_data_home(home):
        return recipe.build(settings)


def _build(recipe: Recipe, name: str, folder: Path, splits, profile, device: str, seed: int,
           progress: bool | None) -> ZooModel:
    dev = get_device(device)
    # One seeded stream for the weights' initialisation and then the augmentation of
    # training, as a script that seeds once would have; forked, so the caller's RNG is untouched.
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        return _load_or_train(recipe, name, folder, splits, profile, dev, seed, progress)


def _load_or_train(recipe: Recipe, name: str, folder: Path, splits, profile, dev: torch.device, seed: int,
                   progress: bool | None) -> ZooModel:
    settings = recipe.settings(profile)
    home = folder.parent.parent
    stem = recipe.run_name(settings) if recipe.run_name else name
    result_path = folder / "result.json"
    model = _new_model(recipe, settings, home)
    if result_path.is_file():
        saved = json.loads(result_path.read_text())
        state = torch.load(folder / f"{stem}.pt", map_location=dev, weights_only=True)
        model.load_state_dict(state["model"])
        history = json.loads((folder / f"{stem}.json").read_text())
        return ZooModel(name, place(model, dev).eval(), history, saved["metrics"], saved["seconds"],
                        saved["eval_seconds"], settings, splits, folder, built_now=False,
                        input_normalisation=recipe.input_normalisation)
    if recipe.start_from:  # fine-tuning: start from the other zoo model's trained weights
        start = build(recipe.start_from, profile, home, str(dev), seed, progress)
        model.load_state_dict(start.model.state_dict())
    for part, zoo_name in recipe.parts(settings).items():  # trained parts from other zoo models
        trained = build(zoo_name, profile, home, str(dev), seed, progress)
        model.get_submodule(part).load_state_dict(trained.model.state_dict())
    if settings["epochs"] == 0:
        return _assemble(recipe, name, place(model, dev), folder, splits, settings, seed, stem)
    plan = _plan(recipe, settings, splits, home)
    optimizer = make_optimizer(settings["optimizer"], model.parameters(), settings["lr"],
                               weight_decay=settings.get("weight_decay", 0.0))
    engine = Engine(model, optimizer, plan.objective, plan.batches, plan.callbacks,
                    batch_size=settings["batch_size"], device=dev, seed=seed, monitor=plan.monitor,
                    metrics=plan.metrics, progress=progress)
    procs = engine.procs
    if procs.main:
        print(f"zoo: building {name} ({recipe.summary}) into {folder}"
              + (f" on {procs.world} processes" if procs.several else ""), flush=True)
    history = engine.fit(splits.train, settings["epochs"], splits.val, splits.test, output_dir=folder,
                         run_name=stem, resume=True)
    seconds = history["seconds"][-1]
    state = torch.load(folder / f"{stem}.pt", map_location=dev, weights_only=True)
    model.load_state_dict(state["model"])
    model.eval()
    start = time.perf_counter()
    torch.manual_seed(seed)  # the metrics' own random starts, the same whatever training drew
    if recipe.evaluate is not None:  # a recipe's own evaluation runs on rank 0 only
        metrics = recipe.evaluate(model, splits, settings) if procs.main else {}
    else:  # every process measures its shard; the counts are summed
        metrics = {f"test_{key}": value for key, value in engine.measure(splits.test).items()}
    eval_seconds = time.perf_counter() - start
    if procs.main:
        atomic_write_json(result_path, {"name": name, "settings": settings, "seed": seed, "metrics": metrics,
                                        "seconds": seconds, "eval_seconds": eval_seconds,
                                        "best_epoch": engine.best_epoch + 1,
                                        "epochs_run": len(history["seconds"]),
                                        "data": splits.identity, "torch": torch.__version__})
    barrier()
    if not procs.main:  # the folder rank 0 wrote, loaded as any finished build
        return _load_or_train(recipe, name, folder, splits, profile, dev, seed, progress)
    return ZooModel(name, model, history, metrics, seconds, eval_seconds, settings, splits, folder,
                    built_now=True, input_normalisation=recipe.input_normalisation)


def _assemble(recipe: Recipe, name: str, model: nn.Module, folder: Path, splits, settings: dict, seed: int,
              stem: str) -> ZooModel:
    """A zoo model made only of trained components: saved as it is, measured, no training."""
    from ..io import atomic_torch_save

    model.eval()
    atomic_torch_save(folder / f"{stem}.pt", {"model": model.state_dict(), "epoch": -1})
    atomic_write_json(folder / f"{stem}.json", {})
    start = time.perf_counter()
    torch.manual_seed(seed)
    if recipe.evaluate is not None:
        metrics = recipe.evaluate(model, splits, settings)
    else:  # the same default as a trained model's: accuracy on the test split
        x, y = (t.to(next(model.parameters()).device) for t in splits.test.tensors)
        metrics = {"test_acc": accuracy(model, x, y)}
    eval_seconds = time.perf_counter() - start
    atomic_write_json(folder / "result.json", {"name": name, "settings": settings, "seed": seed,
                                               "metrics": metrics, "seconds": 0.0, "eval_seconds": eval_seconds,
                                               "best_epoch": 0, "epochs_run": 0, "data": splits.identity,
                                               "torch": torch.__version__})
    print(f"zoo: assembled {name} ({recipe.summary}) from {', '.join(recipe.parts(settings).values())}", flush=True)
    return ZooModel(name, model, {}, metrics, 0.0, eval_seconds, settings, splits, folder, built_now=True,
                    input_normalisation=recipe.input_normalisation)


def trained_model(name: str, profile="quick", data_home=None, progress: bool | None = None,
                  device: str = "auto", seed: int = 0) -> nn.Module:
    """The trained zoo model ``name`` in eval mode: pixels in [0, 1] -> logits (normalisation inside).

    Trains it on a cache miss (see ``build``), loads it otherwise. Every name
    gives a pixel model: a face detector comes wrapped in ``models.PixelInput``.
    """
    return build(name, profile, data_home, device, seed, progress).pixel_model
