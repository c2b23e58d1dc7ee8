"""The model zoo as users reach it: every model of the kit registered, then built or loaded by name.

``trained_model("mnist_pgd")`` returns the trained model (pixels in [0, 1] ->
logits), training it once on a cache miss; ``build(name)`` returns the
``ZooModel`` with its history and metrics. Importing this module imports
``course_lib.models``, whose files register their recipes; the machinery
(``train/zoo.py``) sits below the models and knows only what is registered.
"""
from __future__ import annotations

from . import models  # noqa: F401  (each model file registers its recipes)
from .train.zoo import ZooModel, build, get_recipe, is_built, run_folder, trained_model, zoo_names

__all__ = ["ZooModel", "build", "get_recipe", "is_built", "run_folder", "trained_model", "zoo_names"]
