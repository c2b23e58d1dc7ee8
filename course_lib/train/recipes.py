"""Recipes: how each zoo model is made, registered in the file of the model it trains.

A ``Recipe`` names a model of the zoo and gives, for each profile, the
settings it trains with (a plain dict: epochs, batch size, learning rate, and
whatever its plan reads), the data it trains on, and a ``plan`` that turns the
settings into the engine's plug-ins. ``register`` adds it to ``RECIPES``;
``course_lib/models/mnist_cnn.py`` shows three recipes over one model.

The zoo (``zoo.py``) caches each trained model in a folder keyed by the recipe's
settings, the seed, the data, the torch version, and the source of every
``course_lib`` module the recipe uses (``code_digest`` follows the imports of the
modules that define the recipe's functions and plug-ins, so the list is never
kept by hand).
"""
from __future__ import annotations

import hashlib
import inspect
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from torch import nn


@dataclass
class Plan:
    """What a recipe plugs into the engine; anything left out takes the engine's default."""

    objective: object = None
    batches: object = None
    callbacks: list = field(default_factory=list)
    metrics: object = None          # what validation and test record (default: loss and accuracy)
    monitor: str | None = "val_acc"  # the history key that selects the best epoch


@dataclass(frozen=True)
class Recipe:
    """One zoo model.

    Attributes:
        name: the zoo name, e.g. "mnist_pgd".
        summary: one line for ``course models list``.
        build: ``settings -> nn.Module``, a fresh model mapping the data's inputs to logits.
            The zoo calls it with the build's data home as the default one
            (``config.default_data_home``), where weight loaders look for files.
        data: ``(profile, settings, data_home, seed) -> Splits``.
        quick, full: the settings of each profile; they must hold ``epochs``,
            ``batch_size``, ``optimizer`` ("Adam" or "SGD") and ``lr``.
        plan: ``(settings, splits, data_home) -> Plan``; default plain cross-entropy.
        evaluate: ``(model, splits, settings) -> {metric: value}``, run once
            after training and stored with the model; default test accuracy.
        run_name: ``settings -> file stem`` of the history and checkpoint.
        start_from: another zoo name whose trained weights the model starts
            from (fine-tuning); its build is part of this one's cache key.
        components: ``{submodule: zoo name}``: parts of the model whose trained
            weights come from other zoo models before training (a denoiser's
            fixed classifier, an ensemble's members); their builds are part of
            the cache key. Or ``settings -> {submodule: zoo name}`` when they
            differ between profiles (``parts(settings)`` gives the dict). A recipe with ``epochs`` 0 trains nothing: the zoo
            assembles the model from its components and measures it.
        input_normalisation: ``(mean, std)`` per channel when the data hands the
            model normalised images (the course's face detectors); the zoo's
            ``trained_model`` then puts it inside (``models.PixelInput``), so
            every zoo model it returns takes pixels in [0, 1]. None when the
            model already takes pixels (the MNIST models normalise inside).
    """

    name: str
    summary: str
    build: Callable[[dict], nn.Module]
    data: Callable
    quick: dict
    full: dict
    plan: Callable | None = None
    evaluate: Callable | None = None
    run_name: Callable[[dict], str] | None = None
    start_from: str | None = None
    input_normalisation: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    components: dict[str, str] | Callable[[dict], dict[str, str]] = field(default_factory=dict)

    def parts(self, settings: dict) -> dict[str, str]:
        """``{submodule: zoo name}`` of the components for these settings."""
        return dict(self.components(settings) if callable(self.components) else self.components)

    def settings(self, profile) -> dict:
        """The settings of ``profile`` (a name or a ``Profile``)."""
        name = profile if isinstance(profile, str) else profile.name
        if name not in ("quick", "full"):
            raise ValueError(f"unknown profile {name!r}; valid profiles: quick, full")
        return dict(self.quick if name == "quick" else self.full)


RECIPES: dict[str, Recipe] = {}


def register(recipe: Recipe) -> Recipe:
    """Add ``recipe`` to the zoo; a second recipe under the same name is an error."""
    if recipe.name in RECIPES and RECIPES[recipe.name] is not recipe:
        raise ValueError(f"a recipe named {recipe.name!r} is already registered")
    for profile in ("quick", "full"):
        missing = {"epochs", "batch_size", "optimizer", "lr"} - set(getattr(recipe, profile))
        if missing:
            raise ValueError(f"recipe {recipe.name!r}: {profile} settings lack {', '.join(sorted(missing))}")
    RECIPES[recipe.name] = recipe
    return recipe


def _course_modules(module: types.ModuleType, seen: set) -> None:
    """Add ``module`` and, recursively, every course_lib module its globals refer to."""
    if module is None or not module.__name__.startswith("course_lib") or module.__name__ in seen:
        return
    seen.add(module.__name__)
    for value in vars(module).values():
        if isinstance(value, types.ModuleType):
            _course_modules(value, seen)
        else:
            owner = getattr(value, "__module__", None)
            if isinstance(owner, str) and owner.startswith("course_lib") and owner in sys.modules:
                _course_modules(sys.modules[owner], seen)


def code_digest(*objects) -> tuple[str, list[str]]:
    """sha256 of the source files of every course_lib module that ``objects`` use; and their names.

    ``objects`` are functions, classes or instances (an instance counts by its
    class). Each one's module is followed through its imports (its globals
    that are course_lib modules, functions or classes), transitively.
    """
    seen: set[str] = set()
    for obj in objects:
        if obj is None:
            continue
        target = obj if inspect.isfunction(obj) or inspect.isclass(obj) or inspect.ismethod(obj) else type(obj)
        _course_modules(inspect.getmodule(target), seen)
    h = hashlib.sha256()
    names = sorted(seen)
    for name in names:
        path = getattr(sys.modules[name], "__file__", None)
        if path:
            h.update(name.encode())
            h.update(Path(path).read_bytes())
    return h.hexdigest(), names
