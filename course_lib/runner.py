"""Execute the course notebooks headless with papermill, keeping a report.

``make book`` and the tests both call ``run_notebooks``: executed copies go
to ``_build/executed/<name>.ipynb`` and ``_build/executed/report.json`` records
how long each took and whether it failed. A failed notebook keeps its
executed copy, with the traceback in the failing cell, for inspection.
"""
from __future__ import annotations

import json
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import nbformat

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


def usable_cpus() -> int:
    """CPU cores this process may run on (the affinity mask, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity mask
        return os.cpu_count() or 1


def _zoo_names_in(path: Path, zoo_names) -> set[str]:
    nb = nbformat.read(path, as_version=4)
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    quoted = set(re.findall(r"[\"']([A-Za-z0-9_.]+)[\"']", source))
    return quoted & set(zoo_names)


def notebook_chains(paths, zoo_names=None) -> list[list[Path]]:
    """Group notebooks that name a common zoo model into chains, each in the given order.

    Two notebooks that need one model and run at once would both wait for its
    single build (the zoo locks it), so they run one after the other in one chain
    and the first builds what the later ones load. Sharing is read from the quoted
    zoo names in the code cells; a name the source builds with an f-string goes
    unseen, which costs waiting on the lock, never a wrong result.

    Args:
        paths: notebooks, in the order each chain should run them.
        zoo_names: the names to look for (default: every registered zoo model).
    """
    if zoo_names is None:
        from .zoo import zoo_names as registered

        zoo_names = registered()
    paths = [Path(p) for p in paths]
    chain_of = list(range(len(paths)))  # union-find over notebooks

    def root(i):
        while chain_of[i] != i:
            chain_of[i] = chain_of[chain_of[i]]
            i = chain_of[i]
        return i

    first_user: dict[str, int] = {}
    for i, path in enumerate(paths):
        for name in _zoo_names_in(path, zoo_names):
            j = first_user.setdefault(name, i)
            chain_of[root(i)] = root(j)
    chains: dict[int, list[Path]] = {}
    for i, path in enumerate(paths):
        chains.setdefault(root(i), []).append(path)
    return list(chains.values())


def _previous_seconds(out_dir: Path) -> dict[str, float]:
    """Seconds each notebook took in the last run into ``out_dir`` (empty when none)."""
    try:
        report = json.loads((out_dir / "report.json").read_text())
        return {r["name"]: float(r["seconds"]) for r in report["runs"]}
    except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError):
        return {}


def _end_with_parent(parent: int) -> None:
    """Pool initializer: a worker (and the kernel it runs) ends when the process that started it is gone.

    Killing ``course notebooks run --jobs N`` by its pid (``kill``, a CI job's
    timeout) left its workers running the rest of their chains and then waiting
    forever on a pipe nobody wrote to (seen: two workers 45 minutes after their
    parent). A thread checks the parent once a second; when it is gone, it kills
    this worker's own processes (the Jupyter kernel, which runs in a session of
    its own and so outlives a killed worker) and ends the worker.
    """
    import threading

    import psutil

    def watch() -> None:
        while psutil.pid_exists(parent) and os.getppid() == parent:
            time.sleep(1.0)
        for child in psutil.Process().children(recursive=True):
            try:
                child.kill()
            except psutil.NoSuchProcess:
                continue
        os._exit(1)

    threading.Thread(target=watch, name="end-with-parent", daemon=True).start()


def _run_chain(chain, out_dir, parameters, data_home, timeout, threads) -> list[NotebookRun]:
    """Execute one chain in this (worker) process, its kernels limited to ``threads`` threads."""
    with _environment(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads)):
        return [_report_line(run_notebook(path, out_dir, parameters, data_home, timeout))
                for path in chain]


def _report_line(run: NotebookRun) -> NotebookRun:
    print(f"{'ok  ' if run.ok else 'FAIL'} {run.name:40s} {run.seconds:7.1f} s"
          + (f"  {run.error}" if run.error else ""), flush=True)
    return run


def run_notebooks(paths, out_dir=EXECUTED_DIR, parameters: dict | None = None,
                  data_home=None, timeout: int = 1200, jobs: int = 1, threads: int | None = None) -> list[NotebookRun]:
    """Execute several notebooks; write ``out_dir/report.json`` after each one (each chain, with jobs).

    Args:
        jobs: how many notebooks run at once. Above 1, notebooks that share zoo
            models form chains (``notebook_chains``), the longest chains start first
            (by the previous report's times, else by length), and each kernel gets
            ``usable_cpus() // jobs`` threads. The result is in the order of ``paths``.
            The default is 1. Killing the run ends its workers and their kernels
            too (``_end_with_parent``).
        threads: threads per kernel (default: torch's own for one job at a time,
            ``usable_cpus() // jobs`` for more). A zoo model trained with one thread
            differs in its last digits from one trained with two, and single-step
            adversarial training magnifies them (``mnist_fast``'s robust accuracy
            moved by 3 points at its old eps, 69.0 against 72.0%), so ``make book`` and
            the test suite both run ``--jobs 2 --threads 1`` and build the same zoo on a
            machine (another CPU may still differ in the last digits):
            cold in 9 min 49 s and 19.0 CPU minutes on 2 cores, against 10 min 35 s
            and 20.6 with two threads each and about 14 min one at a time.
    """
    paths = [Path(p) for p in paths]
    out_dir = Path(out_dir)
    order = {p.stem: i for i, p in enumerate(paths)}
    runs: list[NotebookRun] = []

    def record(new_runs):
        runs.extend(new_runs)
        runs.sort(key=lambda r: order[r.name])
        atomic_write_json(out_dir / "report.json",
                          {"parameters": parameters or {}, "runs": [asdict(r) for r in runs]})

    if jobs <= 1 or len(paths) <= 1:  # one at a time: threads, when given, hold here too
        count = str(threads) if threads else None
        with _environment(OMP_NUM_THREADS=count, MKL_NUM_THREADS=count):
            for path in paths:
                record([_report_line(run_notebook(path, out_dir, parameters, data_home, timeout))])
        return runs
    before = _previous_seconds(out_dir)
    chains = sorted(notebook_chains(paths),
                    key=lambda chain: -sum(before.get(p.stem, 60.0) for p in chain))
    threads = threads or max(1, usable_cpus() // jobs)
    # spawn, not fork: the caller may hold torch's thread pools, which a forked child inherits broken.
    with ProcessPoolExecutor(min(jobs, len(chains)), mp_context=get_context("spawn"),
                             initializer=_end_with_parent, initargs=(os.getpid(),)) as pool:
        futures = [pool.submit(_run_chain, chain, out_dir, parameters, data_home, timeout, threads)
                   for chain in chains]
        for future in as_completed(futures):
            record(future.result())
    return runs
