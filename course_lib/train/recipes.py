"""Train a face detector the way a chapter does, with a cache of finished runs.

Several chapters need the same trained models (SimpleNet on both face
datasets, XceptionBased on synthetic_dataset). ``fit_detector`` trains one
with the profile's settings into a folder under ``DATA_HOME/models`` whose
name is a hash of everything that made it: the recipe, the seed, the data
folder and the source code of the modules involved. A later call with the
same key loads the finished run instead of training; a run that was killed
resumes from its last finished epoch (``Trainer.run(resume=True)``); a change
to the code or the settings gets a new folder, never a stale model.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from ..config import Profile, data_home, get_profile, seed_everything
from .optimizers import make_optimizer
from .trainer import Trainer, output_name

# Modules whose source decides what a trained detector is.
_CODE = ("models/simplenet.py", "models/xception.py", "train/trainer.py", "train/optimizers.py",
         "train/recipes.py", "data/faces.py", "data/synth_faces.py")


@dataclass(frozen=True)
class Recipe:
    """How one detector is trained: model, dataset and the optimisation settings."""

    model: str
    dataset: str
    optimizer: str
    lr: float
    batch_size: int
    epochs: int
    crop: int | None
    pretrained: bool


def detector_recipe(profile: Profile | str, model: str, dataset: str) -> Recipe:
    """The profile's recipe for ``model`` ("SimpleNet" or "XceptionBased") on ``dataset``."""
    p = get_profile(profile) if isinstance(profile, str) else profile
    if model == "SimpleNet":
        return Recipe(model, dataset, "Adam", p.faces_lr, p.faces_batch_size,
                      p.faces_epochs[dataset], None, False)
    if model == "XceptionBased":
        return Recipe(model, dataset, "Adam", p.xception_lr, p.xception_batch_size,
                      p.xception_epochs, p.xception_crop, p.xception_pretrained)
    raise ValueError(f"no training recipe for model {model!r}; use 'SimpleNet' or 'XceptionBased'")


def _code_hash() -> str:
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for rel in _CODE:
        h.update((root / rel).read_bytes())
    return h.hexdigest()


def run_folder(recipe: Recipe, faces_root, seed: int, home=None) -> Path:
    """``DATA_HOME/models/<model>_<dataset>_<key>``: the cache folder of this exact run."""
    key = json.dumps({"recipe": asdict(recipe), "seed": seed, "root": str(Path(faces_root).resolve()),
                      "code": _code_hash(), "torch": torch.__version__}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return data_home(home) / "models" / f"{recipe.model}_{recipe.dataset}_{digest}"


def build_detector(recipe: Recipe) -> nn.Module:
    """A fresh model for ``recipe`` (random init, or ImageNet weights when ``pretrained``)."""
    from ..models import get_model

    if recipe.model == "XceptionBased":
        return get_model("XceptionBased", pretrained=recipe.pretrained)
    return get_model(recipe.model)


def fit_detector(recipe: Recipe, faces_root, seed: int = 0, home=None, device: str = "auto"):
    """Train (or load the cached run of) ``recipe`` on the face datasets in ``faces_root``.

    Returns:
        (model, history, splits, folder): the best-validation model in eval
        mode on ``device``, the per-epoch history (see ``Trainer.run``),
        the (train, val, test) datasets with the recipe's transforms, and
        the run's folder (history JSON, best checkpoint, resume state).
    """
    from ..data import load_dataset

    folder = run_folder(recipe, faces_root, seed, home)
    splits = [load_dataset(faces_root, recipe.dataset, part, crop_size=recipe.crop)
              for part in ("train", "val", "test")]
    seed_everything(seed)
    model = build_detector(recipe)
    optimizer = make_optimizer(recipe.optimizer, model.parameters(), lr=recipe.lr)
    trainer = Trainer(model, optimizer, nn.CrossEntropyLoss(), recipe.batch_size, *splits,
                      device=device, seed=seed)
    name = output_name(recipe.dataset, recipe.model, recipe.optimizer)
    log = folder / f"{name}.json"
    done = log.exists() and len(json.loads(log.read_text())["train_loss"]) >= recipe.epochs
    print(f"{recipe.model} on {recipe.dataset}: "
          + (f"loading the finished run from {folder}" if done else f"training into {folder}"))
    history = trainer.run(recipe.epochs, output_dir=folder, run_name=name, resume=True)
    best = torch.load(folder / f"{name}.pt", map_location=trainer.device)
    model.load_state_dict(best["model"])
    return model.eval(), history, splits, folder
