"""Shared fixtures: small datasets made on the fly, and one quick-profile data home.

The suite runs in one process, one test after the other. Two pytest-xdist workers
(the notebooks on one, every other module beside them on the other, at nice 19 or
in the idle CPU class) took as long on 2 cores: the chapters beside the other
tests ran 2-4 times slower (chapter 2 in 143-239 s against 60 s alone).
"""
from __future__ import annotations

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


@pytest.fixture(scope="session")
def hostile_batch(tmp_path_factory):
    """The corpus's batch (every hostile case), killed (SIGKILL) once 8 rows are written, then run again to the end.

    Session-wide: the Dask tests compare their grades with these.
    """
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    from .grading.corpus import HOSTILE_WORKERS, LIMITS, digest, read_rows, write_course

    course = tmp_path_factory.mktemp("course")
    server = socket.create_server(("127.0.0.1", 0))  # what the "network" submission tries to reach
    corpus = write_course(course, server.getsockname()[1])
    secrets = {p: digest(p) for p in [course / "source" / "tiny" / "tiny.ipynb",
                                      course / "submitted" / "honest_1" / "tiny" / "tiny.ipynb"]}
    command = [sys.executable, "-m", "course_lib.cli", "grade", "tiny", "--course-dir", str(course),
               "--workers", str(HOSTILE_WORKERS), *LIMITS]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while len(read_rows(course)) < 8 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    rows_at_kill = len(read_rows(course))
    second = subprocess.run(command, capture_output=True, text=True, timeout=600)
    server.close()
    assert second.returncode == 0, second.stderr[-3000:]
    return {"course": course, "corpus": {c.name: c for c in corpus}, "rows": read_rows(course),
            "rows_at_kill": rows_at_kill, "secrets": secrets, "log": second.stderr}
