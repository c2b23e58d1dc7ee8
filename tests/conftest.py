"""Shared fixtures: small datasets made on the fly, and one quick-profile data home.

``make test`` runs the suite on two pytest-xdist workers: one executes the notebooks
and builds the book (the tests of ``NOTEBOOK_MODULES``, which share that one run),
the other takes every other module, whole, one after another, at a lower priority.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent

# The modules whose tests read the executed notebooks, the built book, or the zoo models that the
# notebooks build (test_zoo_targets): one group, so the notebooks run once, on one worker.
NOTEBOOK_MODULES = {"test_book.py", "test_notebooks.py", "test_browser.py", "test_zoo_targets.py"}


def pytest_collection_modifyitems(config, items):
    """The notebook modules' tests first: they are the longest group, so they start first."""
    items.sort(key=lambda item: Path(item.nodeid.split("::")[0]).name not in NOTEBOOK_MODULES)  # stable


NOTEBOOK_WORKER = "gw0"  # the xdist worker that runs the notebook group, at normal priority


def pytest_xdist_make_scheduler(config, log):
    """xdist hands out whole modules, the notebook modules as one group that goes to ``NOTEBOOK_WORKER``.

    Written here because xdist 3.8's ``--dist loadgroup`` groups nothing under
    pytest 9 (it renames ``item._nodeid``, which pytest 9 no longer reads). Whole
    modules also keep each module-scoped fixture to one worker.
    """
    from xdist.scheduler import LoadScopeScheduling

    class ModuleGroups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::")[0]
            return "notebooks" if Path(module).name in NOTEBOOK_MODULES else module

        def _assign_work_unit(self, node) -> None:
            # the notebook group to its worker; other workers never take it
            if node.gateway.id == NOTEBOOK_WORKER and "notebooks" in self.workqueue:
                self.workqueue.move_to_end("notebooks", last=False)
            elif next(iter(self.workqueue)) == "notebooks":
                if len(self.workqueue) == 1:
                    return  # only the notebook group is left: it waits for its worker
                self.workqueue.move_to_end("notebooks")
            super()._assign_work_unit(node)

    config.option.loadscopereorder = False  # keep the order above: notebooks first
    return ModuleGroups(config, log)


def pytest_configure(config):
    """On xdist workers other than ``NOTEBOOK_WORKER``: the idle CPU class, and one torch thread.

    The notebooks are the longest chain of the run, and their kernels train the
    zoo with torch's default threads (the models a user's ``make book`` builds).
    Run beside them at equal priority, the other tests (three benchmark scripts at
    once, graded notebooks) slowed the first chapters four times over, and still
    about four times at nice 19: a preempted OpenMP thread stalls its partner. Under
    SCHED_IDLE they run only on a core the notebooks leave free, and a waking
    notebook thread preempts them at once. Their subprocesses inherit it.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and worker != NOTEBOOK_WORKER:
        import torch

        if hasattr(os, "SCHED_IDLE"):  # Linux
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        else:
            os.nice(19)
        torch.set_num_threads(1)


def write_images(folder: Path, n: int, colour: int, size=(256, 256), mode="RGB") -> None:
    """Write ``n`` flat PNG images of one grey level into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
        Image.fromarray(np.full(shape, colour, np.uint8), mode).save(folder / f"{i:03d}.png")


@pytest.fixture
def small_split(tmp_path) -> Path:
    """A split folder with 3 dark real images and 2 bright fake images."""
    split = tmp_path / "fakes_dataset" / "train"
    write_images(split / "real", 3, colour=20)
    write_images(split / "fake", 2, colour=230)
    return split


@pytest.fixture(scope="session")
def quick_data_home(tmp_path_factory) -> Path:
    """One DATA_HOME for the whole session, holding the quick-profile stand-in.

    The notebooks, the CLI tests and the book build all use it, so the faces
    are drawn once per test run.
    """
    from course_lib.data import faces_root

    home = tmp_path_factory.mktemp("data_home")
    home.chmod(0o755)  # graded submissions read the zoo from here as an unprivileged user
    faces_root("quick", home, seed=0, progress=False)
    return home


@pytest.fixture(scope="session")
def zoo_home(quick_data_home) -> Path:
    """The data home whose model zoo the tests and the notebooks share (built on first use)."""
    return quick_data_home


@pytest.fixture(scope="session")
def mnist_baseline(zoo_home):
    """The zoo's undefended MNIST CNN (trained once per test run, on the CPU)."""
    from course_lib.zoo import trained_model

    return trained_model("mnist_baseline", "quick", zoo_home, device="cpu")


@pytest.fixture(scope="session")
def _scratch_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("scratch_home")


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch, _scratch_home):
    """No progress bars, and never the user's real data folder."""
    monkeypatch.setenv("COURSE_PROGRESS", "0")
    monkeypatch.setenv("COURSE_DATA_HOME", str(_scratch_home))


@pytest.fixture(scope="session")
def executed_notebooks(quick_data_home):
    """Execute every notebook once (quick profile) into _build/executed.

    The notebook tests and the book build share this one run.
    """
    from course_lib.runner import EXECUTED_DIR, list_notebooks, run_notebooks

    # One at a time: the zoo models then train with all cores' threads, as users' builds do
    # (run_notebooks's docstring: two jobs save 2 minutes here but change the models' last digits).
    runs = run_notebooks(list_notebooks(REPO / "notebooks"), EXECUTED_DIR, data_home=quick_data_home)
    return {run.name: run for run in runs}


@pytest.fixture(scope="session")
def built_book(executed_notebooks) -> Path:
    """The HTML book, built once from the session's executed notebooks."""
    from course_lib.book import build_book
    from course_lib.runner import EXECUTED_DIR

    assert all(run.ok for run in executed_notebooks.values()), "a notebook failed; see _build/executed"
    return build_book(EXECUTED_DIR)
