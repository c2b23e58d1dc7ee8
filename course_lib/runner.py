"""Execute the course notebooks headless with papermill, keeping a report.

``make book`` and the tests both call ``run_notebooks``: executed copies go
to ``_build/executed/<name>.ipynb`` and ``_build/executed/report.json`` records
how long each took and whether it failed. A failed notebook keeps its
executed copy, with the traceback in the failing cell, for inspection.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from .config import DATA_HOME_ENV, PROGRESS_ENV
from .io import atomic_write_json

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
EXECUTED_DIR = REPO_ROOT / "_build" / "executed"
REQUIRED_PARAMETERS = ("PROFILE", "SEED", "DATA_HOME", "DEVICE")


@dataclass
class NotebookRun:
    """Outcome of executing one notebook."""

    name: str
    output: str
    seconds: float
    ok: bool
    error: str = ""


def list_notebooks(folder=NOTEBOOKS_DIR) -> list[Path]:
    """The course notebooks in ``folder``, in chapter order (by file name)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"notebook folder {folder} does not exist")
    return sorted(p for p in folder.glob("*.ipynb") if not p.name.startswith("."))


def select_notebooks(names: list[str] | None, folder=NOTEBOOKS_DIR) -> list[Path]:
    """Notebooks whose file name starts with one of ``names`` (all when empty)."""
    available = list_notebooks(folder)
    if not names:
        return available
    chosen = []
    for name in names:
        hits = [p for p in available if p.name.startswith(name)]
        if not hits:
            raise ValueError(f"no notebook matches {name!r}; available: "
                             f"{', '.join(p.stem for p in available)}")
        chosen.extend(h for h in hits if h not in chosen)
    return chosen


@contextmanager
def _environment(**values):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update({k: v for k, v in values.items() if v is not None})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_notebook(path, out_dir=EXECUTED_DIR, parameters: dict | None = None,
                 data_home=None, timeout: int = 1200) -> NotebookRun:
    """Execute one notebook with papermill into ``out_dir``.

    Args:
        path: the source notebook (its outputs, if any, are replaced).
        parameters: values for the ``parameters`` cell (papermill injects a
            cell after it); None or {} runs the defaults, the ``quick`` profile.
        data_home: exported as ``COURSE_DATA_HOME`` to the kernel.
        timeout: seconds allowed per cell.
    """
    import papermill as pm

    path = Path(path)
    out = Path(out_dir) / path.name
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    error = ""
    with _environment(**{DATA_HOME_ENV: str(data_home) if data_home else None, PROGRESS_ENV: "0",
                         "MPLBACKEND": "module://matplotlib_inline.backend_inline"}):
        try:
            pm.execute_notebook(str(path), str(out), parameters=parameters or {},
                                cwd=str(path.parent), kernel_name="python3",
                                progress_bar=False, execution_timeout=timeout)
        except pm.PapermillExecutionError as err:
            error = f"{err.ename}: {err.evalue} (cell {err.exec_count})"
    return NotebookRun(path.stem, str(out), round(time.perf_counter() - start, 2), not error, error)


def run_notebooks(paths, out_dir=EXECUTED_DIR, parameters: dict | None = None,
                  data_home=None, timeout: int = 1200) -> list[NotebookRun]:
    """Execute several notebooks in order; write ``out_dir/report.json``."""
    runs = []
    for path in paths:
        runs.append(run_notebook(path, out_dir, parameters, data_home, timeout))
        print(f"{'ok  ' if runs[-1].ok else 'FAIL'} {runs[-1].name:40s} {runs[-1].seconds:7.1f} s"
              + (f"  {runs[-1].error}" if runs[-1].error else ""), flush=True)
        atomic_write_json(Path(out_dir) / "report.json",
                          {"parameters": parameters or {}, "runs": [asdict(r) for r in runs]})
    return runs
