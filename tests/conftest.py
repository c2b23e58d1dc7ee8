"""Shared fixtures: small datasets made on the fly, and one quick-profile data home."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent


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
    from course_lib.train.zoo import trained_model

    return trained_model("mnist_baseline", "quick", zoo_home, device="cpu")


@pytest.fixture(scope="session")
def _scratch_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("scratch_home")


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch, _scratch_home):
    """No progress bars, and never the user's real data folder."""
    monkeypatch.setenv("COURSE_PROGRESS", "0")
    monkeypatch.setenv("COURSE_DATA_HOME", str(_scratch_home))


def _runs_after_notebooks(item) -> bool:
    return "executed_notebooks" in item.fixturenames or item.get_closest_marker("after_notebooks") is not None


def pytest_collection_modifyitems(config, items):
    """Run the tests that need the executed notebooks last, and start executing them first.

    Executing the chapters takes most of the run and leaves part of the CPU idle
    (kernels start, figures render); the other tests fill that time while the
    notebooks run in a background process (``_notebooks_in_background``).
    """
    items.sort(key=_runs_after_notebooks)  # stable: the order within each part stays
    config.stash[_NEEDS_NOTEBOOKS] = any("executed_notebooks" in item.fixturenames for item in items)


_NEEDS_NOTEBOOKS = pytest.StashKey[bool]()


@pytest.fixture(scope="session", autouse=True)
def _notebooks_in_background(request, tmp_path_factory):
    """The ``course notebooks run`` process (quick profile), started before the first test.

    None when no selected test needs the executed notebooks. Stopped at the end of
    the session if it is still running (an interrupted run).
    """
    if not request.config.stash.get(_NEEDS_NOTEBOOKS, False):
        yield None
        return
    from course_lib.runner import EXECUTED_DIR

    home = request.getfixturevalue("quick_data_home")
    log = tmp_path_factory.mktemp("notebooks") / "run.log"
    (EXECUTED_DIR / "report.json").unlink(missing_ok=True)  # never read a previous run's report
    env = dict(os.environ, COURSE_PROGRESS="0")
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "course_lib.cli", "notebooks", "run", "--out", str(EXECUTED_DIR),
             "--data-home", str(home)], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    process.log = log
    yield process
    if process.poll() is None:
        process.terminate()
        process.wait(timeout=60)


@pytest.fixture(scope="session")
def executed_notebooks(_notebooks_in_background):
    """Every notebook executed once (quick profile) into _build/executed, by the background run.

    The notebook tests and the book build share this one run. Maps each
    notebook's name to its ``NotebookRun`` (read from the run's report.json).
    """
    from course_lib.runner import EXECUTED_DIR, NotebookRun, list_notebooks

    process = _notebooks_in_background
    process.wait()
    report = EXECUTED_DIR / "report.json"
    names = [p.stem for p in list_notebooks(REPO / "notebooks")]
    runs = json.loads(report.read_text())["runs"] if report.exists() else []
    runs = {run["name"]: NotebookRun(**run) for run in runs}
    assert set(runs) == set(names), (
        f"the notebook run (exit {process.returncode}) reported {sorted(runs)}, not every notebook; "
        f"its log:\n{process.log.read_text()[-3000:]}")
    return runs


@pytest.fixture(scope="session")
def built_book(executed_notebooks) -> Path:
    """The HTML book, built once from the session's executed notebooks."""
    from course_lib.book import build_book
    from course_lib.runner import EXECUTED_DIR

    assert all(run.ok for run in executed_notebooks.values()), "a notebook failed; see _build/executed"
    return build_book(EXECUTED_DIR)
