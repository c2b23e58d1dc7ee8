"""Shared fixtures: small datasets made on the fly, and one quick-profile data home.

The notebooks run in a background process (``_book_run``), started with the first
test of a session that has tests reading them; the other tests run beside it, and
the tests that read the executed notebooks or the book run last, waiting for it.
The suite is CPU-bound, so the book run takes the cheapest way through the chapters:
two notebooks at a time with one thread each (``--jobs 2 --threads 1``, what
``make book`` runs on 2 cores), at the other tests' priority. A second torch thread
bought little on these small models: chapter 6 alone took 190 s and 255 CPU s with
two threads, 207 s and 206 CPU s with one. Fresh clones' pytest: 17 min 42 s, 19 min
0 s and 20 min 4 s this way (32-35 CPU minutes), against 19 min 54 s and 20 min 12 s
(37 CPU minutes) with one notebook at a time, two threads, and the book's scheduling
groups at nice -10 (the best of three priorities measured: -20 and real-time
round-robin ended later). The other tests, one at a time, then ended last; the
benchmark scripts' smoke runs (``_benchmark_runs``) therefore run in the background
too, from the session's first test, and their tests come after the others: on a
slower machine, pytest took 23 min 49 s and 25 min 2 s with them in the background,
25 min 10 s without (inside its run-to-run spread), and the book run now ends last.

Two pytest-xdist workers (the notebooks on one, every other module on the other)
took as long: the chapters ran 2-4 times slower. That was OpenMP's spinning: an
idle torch thread busy-waits for its next task, and a thread spinning beside
another process takes that process's core. Measured here (MnistCNN training steps
per second, 2 threads): 35 alone, 17.7 beside a one-core busy loop with the default
wait policy, 32.9 with OMP_WAIT_POLICY=PASSIVE (35.4 alone). The suite and every
process it starts therefore run with the passive policy; it changes no result.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when torch's OpenMP loads: before any import of torch

import shlex  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

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


def _order(item) -> int:
    """0: reads no background run; 1: reads the benchmarks' runs; 2: reads each notebook as the book run finishes
    it; 3: waits for the whole book run."""
    names = getattr(item, "fixturenames", ())
    return 3 if "executed_notebooks" in names else 2 if "notebooks_as_executed" in names else \
        1 if "benchmark_runs" in names else 0


def _reads_the_book(item) -> bool:
    return _order(item) > 1


def pytest_collection_modifyitems(session, config, items):
    """The tests that read a background run last, in their order: they wait for it.

    The benchmarks' smoke runs end first. Among the tests of the book run, those that
    take each notebook as it is finished come first: they work while the book run is
    still going (nbval re-runs chapters 1-10 beside chapter 11), not after it.
    """
    items.sort(key=_order)


BOOK_RUN_LOG = REPO / "_build" / "book_run.log"


def _book_run_failed(process, what: str) -> str:
    return f"the background book run {what} (exit {process.returncode}); {BOOK_RUN_LOG} ends:\n" + \
        BOOK_RUN_LOG.read_text()[-5000:]


@pytest.fixture(scope="session", autouse=True)
def _book_run(request):
    """``make book``'s two commands in the background: the notebooks (quick) into _build/executed, then the book.

    Started with the session's first test when some test reads the notebooks;
    ``None`` otherwise. When the only readers are some chapters' headless tests, only
    those chapters run and the book is not built. Its output goes to
    ``_build/book_run.log``. A run still going at the session's end (an
    interrupted session) is killed with its kernels.
    """
    readers = [item for item in request.session.items if _reads_the_book(item)]
    if not readers:
        yield None
        return
    home = request.getfixturevalue("quick_data_home")
    from course_lib.runner import EXECUTED_DIR, list_notebooks

    # Only some chapters' headless tests selected (pytest -k 05): only those chapters, and no book.
    chosen = [item.callspec.params["path"].stem for item in readers
              if item.originalname == "test_notebook_runs_headless"]
    whole_book = len(chosen) < len(readers)
    course = [sys.executable, "-m", "course_lib.cli"]
    command = shlex.join([*course, "notebooks", "run", *([] if whole_book else chosen), "--out", str(EXECUTED_DIR),
                          "--data-home", str(home), "--jobs", "2", "--threads", "1"])
    if whole_book:
        command += " && " + shlex.join([*course, "book", "--executed", str(EXECUTED_DIR)])
    BOOK_RUN_LOG.parent.mkdir(parents=True, exist_ok=True)
    (EXECUTED_DIR / "report.json").unlink(missing_ok=True)  # never read a previous session's report
    with open(BOOK_RUN_LOG, "w") as log:
        process = subprocess.Popen(["bash", "-c", command], cwd=REPO, env=dict(os.environ, COURSE_PROGRESS="0"),
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    process.notebooks = [path for path in list_notebooks(REPO / "notebooks") if whole_book or path.stem in chosen]
    yield process
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture(scope="session", autouse=True)
def _benchmark_runs(request, tmp_path_factory):
    """The selected benchmark scripts' smoke runs (``tests/benchmark_runs.py``), started with the session's first test.

    ``None`` when no selected test reads them; killed at the session's end if still going.
    """
    chosen = [item.callspec.params["name"] for item in request.session.items
              if "benchmark_runs" in getattr(item, "fixturenames", ())]
    if not chosen:
        yield None
        return
    from .benchmark_runs import BackgroundRuns

    runs = BackgroundRuns({name: tmp_path_factory.mktemp(f"benchmark_{name}") for name in chosen})
    yield runs
    runs.close()


# Two fixtures: an autouse fixture's name is in every test's fixturenames, so the tests that read
# the runs (and that ``_order`` puts after the others) are found by this one's name.
@pytest.fixture(scope="session")
def benchmark_runs(_benchmark_runs):
    """The background benchmark runs: ``.futures[name]`` (a ``CompletedProcess``) and ``.folders[name]``."""
    return _benchmark_runs


@pytest.fixture(scope="session")
def executed_notebooks(_book_run):
    """Every notebook, executed once (quick profile) into _build/executed: ``{name: NotebookRun}``.

    The notebook tests and the book build share this one run (``_book_run``).
    """
    import json

    from course_lib.runner import EXECUTED_DIR, NotebookRun

    _book_run.wait()
    report_path = EXECUTED_DIR / "report.json"
    assert report_path.is_file(), _book_run_failed(_book_run, "wrote no report")
    runs = [NotebookRun(**run) for run in json.loads(report_path.read_text())["runs"]]
    return {run.name: run for run in runs}


@pytest.fixture(scope="session")
def notebooks_as_executed(_book_run):
    """A generator of the book run's notebooks as they are finished, in batches: ``[NotebookRun, ...]`` per wait.

    Each batch holds the notebooks that ``report.json`` (rewritten atomically after
    each notebook) lists and earlier batches did not; it ends when every notebook of
    the run is listed. A book run that ends without writing a notebook's report
    fails the test that reads it, with the run's log.
    """
    import json

    from course_lib.runner import EXECUTED_DIR, NotebookRun

    report_path = EXECUTED_DIR / "report.json"
    expected = {path.stem for path in _book_run.notebooks}

    def batches():
        seen: set[str] = set()
        while seen != expected:
            ended = _book_run.poll() is not None
            listed = json.loads(report_path.read_text())["runs"] if report_path.is_file() else []
            new = [NotebookRun(**run) for run in listed if run["name"] not in seen]
            if new:
                seen.update(run.name for run in new)
                yield new
            elif ended:
                missing = ", ".join(sorted(expected - seen))
                raise AssertionError(_book_run_failed(_book_run, f"ended without running {missing}"))
            else:
                time.sleep(2.0)

    return batches


@pytest.fixture(scope="session")
def built_book(executed_notebooks, _book_run) -> Path:
    """The HTML book, built once from the session's executed notebooks (by ``_book_run``)."""
    assert all(run.ok for run in executed_notebooks.values()), "a notebook failed; see _build/executed"
    assert _book_run.returncode == 0, _book_run_failed(_book_run, "did not build the book")
    return REPO / "_build" / "html"


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
