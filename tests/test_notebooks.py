"""Every notebook runs headless in the quick profile; deterministic cells reproduce (nbval)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_lib.runner import list_notebooks

from .conftest import REPO

NOTEBOOKS = list_notebooks(REPO / "notebooks")


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_headless(executed_notebooks, path):
    run = executed_notebooks[path.stem]
    assert run.ok, f"{path.name} failed: {run.error}; see {run.output}"
    nb = nbformat.read(run.output, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "a lesson shows its figures"
    assert not [o for o in outputs if o.output_type == "stream" and "Traceback" in o.text]


def checked_prefix(executed, folder: Path) -> Path:
    """Copy an executed notebook up to its last NBVAL_CHECK_OUTPUT cell into ``folder``.

    nbval re-executes every cell it is given; the checked cells only need the
    cells before them, so the rest of the chapter (already run once by the
    fixture) is not run a second time. Within the prefix, cells tagged ``nbval-skip``
    (figures the checked cells do not need, as in chapter 4) are not re-run either;
    a checked cell that needed one fails with a NameError. Raises when no cell is checked.
    """
    executed = Path(executed)
    nb = nbformat.read(executed, as_version=4)
    checked = [i for i, c in enumerate(nb.cells) if "NBVAL_CHECK_OUTPUT" in c.source]
    assert checked, f"{executed.name}: mark a deterministic cell with # NBVAL_CHECK_OUTPUT"
    nb.cells = nb.cells[: checked[-1] + 1]
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / executed.name)
    return folder / executed.name


@pytest.mark.slow
def test_deterministic_cells_reproduce_with_nbval(notebooks_as_executed, quick_data_home):
    """Re-run each executed notebook with nbval: cells marked NBVAL_CHECK_OUTPUT must match.

    The chapters are re-run as the book run finishes them, beside its later chapters,
    so that only the last chapter's check waits for the end of the run.
    """
    folder = REPO / "_build" / "nbval"
    # Two notebooks at a time, one thread each (as the fixture ran them): 47 s here against 77 s
    # one after the other with two threads; four threads on two cores took 100 s.
    env = dict(os.environ, COURSE_DATA_HOME=str(quick_data_home), COURSE_PROGRESS="0", OMP_NUM_THREADS="1")
    failures, checked = [], []
    for runs in notebooks_as_executed():
        prefixes = [checked_prefix(run.output, folder) for run in runs]
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q", "-n", "2",
             "--dist", "loadfile", "--rootdir", str(REPO / "_build"), *prefixes],
            env=env, cwd=REPO, capture_output=True, text=True)
        checked += [run.name for run in runs]
        if result.returncode != 0:
            failures.append(result.stdout[-5000:] + result.stderr[-2000:])
    assert sorted(checked) == sorted(path.stem for path in NOTEBOOKS)
    assert not failures, "\n\n".join(failures)
