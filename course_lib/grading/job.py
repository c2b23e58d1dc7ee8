"""Grade one notebook from plain data: what a grading worker runs, here or on a Dask worker.

A ``Job`` carries everything (the instructor's notebook with its hidden
tests, the student version, the submission's bytes, the limits), so a worker
needs the kit installed but not the course folder. ``grade_job``:

1. parses the submission (not a notebook -> ``invalid``) and ``rebuild``-s it
   from the source: the instructor's cells, the student's answers;
2. runs it in the sandbox with the test cells cut down to their probes (the
   student's process: every limit of ``sandbox.py``);
3. runs the checks of the probes that finished in a second sandboxed process
   that never runs student code, on the recorded values;
4. merges both into one graded notebook and returns it as JSON text with
   the status, the reason and nbgrader's score per test cell.

Everything a job writes (the notebooks, the hidden tests among them, the
probes' records) lives in sandbox folders under a private temporary folder
that is removed before it returns; one left by a grader that was killed
(a Dask worker lost mid-job) is removed by the next grader on the machine
(``remove_abandoned_work``), so no submission stays on a worker's disk.
Nothing the submission produced is unpickled: notebooks are parsed as JSON,
records are copied as bytes.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from . import cells as nbcells
from . import memory_cgroup
from .sandbox import (DISK_BACKSTOP, Limits, claim_slot, isolation, prepare_folder, run_sandboxed, sandbox_env,
                      slot_uid)

MAX_NOTEBOOK_BYTES = 64 << 20


@dataclass(frozen=True)
class Job:
    """One student's notebook to grade, as plain data (picklable; no open files, no course folder)."""

    student: str
    assignment: str
    name: str  # the notebook's file name, e.g. "tiny.ipynb"
    source: str  # the instructor's notebook (hidden tests included), JSON text
    release: str | None  # the student version, JSON text (None: not released)
    submission: bytes | None  # None: missing, or not a regular file under MAX_NOTEBOOK_BYTES
    submission_exists: bool  # whether something (a link, a folder, a huge file) was there
    limits: Limits = Limits()
    data_home: str = ""  # the zoo the submissions load from, on the worker's machine
    hide: tuple[str, ...] = ()  # folders that show empty inside the sandbox, where they exist
    attempt: int = 1  # 2: the re-run after a wall-clock timeout

    @property
    def stem(self) -> str:
        return Path(self.name).stem


@functools.lru_cache(maxsize=None)
def kernel_kit_assignments(python: str = sys.executable) -> tuple[str, ...]:
    """The assignments folder (solutions inside) of the kit that ``python`` imports in a sandbox: to hide too.

    ``Job.hide`` names the submitting kit's folder, on the submitting machine.
    The kernels import the kit this worker's ``python`` finds, which can lie
    elsewhere: a Dask worker's own install, or an editable install of another
    checkout. Asked of that interpreter in the sandbox's environment, once per
    process, without importing the kit. () when it has no assignments folder.
    """
    probe = ("import importlib.util as u; s = u.find_spec('course_lib'); "
             "print(s.submodule_search_locations[0] if s and s.submodule_search_locations else '')")
    scratch = Path(tempfile.gettempdir())
    found = subprocess.run([python, "-c", probe], cwd=scratch, env=sandbox_env(scratch, {"PYTHONPATH": ""}),
                           capture_output=True, text=True, timeout=120)
    if found.returncode != 0:
        raise RuntimeError(f"could not ask {python} where it imports course_lib from (exit {found.returncode}): "
                           f"{found.stderr.strip()[-2000:]}; check that the kit is installed for that interpreter")
    package = found.stdout.strip()
    assignments = Path(package).parent / "assignments" if package else None
    return (str(assignments),) if assignments is not None and assignments.is_dir() else ()


@dataclass
class PhaseResult:
    notebook: nbformat.NotebookNode | None  # executed copy (untrusted when it is the student's)
    status: str  # ok, timeout, memory, crashed, output
    reason: str
    records: Path | None = None
    clock: str = ""  # for a timeout: "cpu" or "wall"


@dataclass
class Result:
    """What a worker sends back: plain data only."""

    notebook: str  # the graded notebook, JSON text
    status: str
    reason: str
    seconds: float
    scores: dict[str, list[float]] = field(default_factory=dict)  # grade_id -> [score, max_score]
    clock: str = ""  # "wall" when a wall-clock limit stopped the student's run (worth one re-run)
    worker: str = ""  # where it ran (a Dask worker's address, or "local")

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def read_untrusted(path: Path, max_bytes: int) -> bytes | None:
    """The bytes of a regular file that is not a link, or None; never more than ``max_bytes``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return None
        data = handle.read(max_bytes + 1)
    return None if len(data) > max_bytes else data


def _clean_output(out) -> dict | None:
    """A fresh, valid output built from an untrusted one (None when malformed)."""
    try:
        kind = out["output_type"]
        if kind == "stream":
            return nbformat.v4.new_output("stream", name=str(out["name"]), text=str(out["text"]))
        if kind == "error":
            return nbformat.v4.new_output("error", ename=str(out["ename"]), evalue=str(out["evalue"]),
                                          traceback=[str(t) for t in out["traceback"]])
        if kind in ("display_data", "execute_result"):
            data = {str(k): v if isinstance(v, (str, dict, list)) else str(v) for k, v in out["data"].items()}
            if kind == "execute_result":
                return nbformat.v4.new_output(kind, data=data, execution_count=None)
            return nbformat.v4.new_output(kind, data=data)
    except (KeyError, TypeError, AttributeError):
        return None
    return None


def _error(ename: str, evalue: str) -> dict:
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def not_run(nb, reason: str):
    """``nb`` with every test cell's output saying why it was not graded."""
    for cell in nb.cells:
        if nbcells.is_test_cell(cell):
            cell.outputs = [_error("NotGraded", reason)]
    return nb


def cell_scores(nb) -> dict[str, list[float]]:
    """nbgrader's score per graded cell (``determine_grade``: what its gradebook records)."""
    from nbgrader import utils

    log = logging.getLogger("course-grade")
    scores = {}
    for cell in nb.cells:
        if utils.is_grade(cell):
            score, max_score = utils.determine_grade(cell, log)
            scores[nbcells.nbgrader_meta(cell)["grade_id"]] = [float(score or 0.0), float(max_score)]
    return scores


class _Run:
    """The sandboxed phases of one job, in ``work_root`` (a private temporary folder)."""

    def __init__(self, job: Job, slot: int, work_root: Path):
        self.job, self.slot, self.work_root, self.limits = job, slot, work_root, job.limits

    def phase(self, nb, label: str, records_in: Path | None = None) -> PhaseResult:
        folder = prepare_folder(self.work_root / f"{label}-{uuid.uuid4().hex[:8]}", self.slot)
        try:
            nbformat.write(nb, folder / "in.ipynb")
            records = folder / "records"
            if records_in is not None:
                shutil.copytree(records_in, records)
            if isolation().unprivileged_user:
                owned = [folder / "in.ipynb"] + ([records, *records.iterdir()] if records.exists() else [])
                for path in owned:
                    os.chown(path, slot_uid(self.slot), slot_uid(self.slot))
            extra = {"COURSE_GRADING_RECORDS": str(records), "PYTHONPATH": "",
                     "COURSE_DATA_HOME": self.job.data_home}
            command = [sys.executable, "-m", "course_lib.grading.execute", "in.ipynb", "out.ipynb",
                       "status.json", "--cell-timeout", str(self.limits.cell_timeout),
                       "--max-output-bytes", str(int(self.limits.max_output_mb * 2**20)),
                       "--max-disk-bytes", str(int(self.limits.disk_mb * 2**20)),
                       "--max-files", str(self.limits.max_files),
                       "--wall-factor", str(self.limits.wall_factor)]
            hide = [Path(p) for p in dict.fromkeys((*self.job.hide, *kernel_kit_assignments()))]
            expose = [Path(self.job.data_home)] if self.job.data_home else []
            outcome = run_sandboxed(command, folder, self.slot, self.limits, hide,
                                    sandbox_env(folder, extra), expose=expose)
            executed = read_untrusted(folder / "out.ipynb", MAX_NOTEBOOK_BYTES)
            status_bytes = read_untrusted(folder / "status.json", 1 << 16)
            try:
                executed_nb = nbformat.reads(executed.decode(), as_version=4) if executed else None
            except Exception:  # noqa: BLE001 - untrusted bytes: any parse failure means "no notebook"
                executed_nb = None
            try:
                status = json.loads(status_bytes) if status_bytes else {}
                status = {"status": str(status["status"]), "reason": str(status.get("reason", "")),
                          "clock": str(status.get("clock", ""))}
            except (ValueError, KeyError, TypeError):
                status = None
            if status and status["status"] == "crashed" and "MemoryError" in outcome.stderr:
                status = {"status": "memory", "reason": f"the kernel died out of memory "
                                                        f"(over {self.limits.memory_mb} MiB)", "clock": ""}
            if outcome.clock == "cpu":
                status = {"status": "timeout", "clock": "cpu",
                          "reason": f"the notebook used more than {self.limits.timeout:g} s of CPU time in all"}
            elif outcome.clock == "wall":
                status = {"status": "timeout", "clock": "wall",
                          "reason": f"the notebook ran longer than {self.limits.wall(self.limits.timeout):g} s "
                                    f"of wall clock in all (having used {outcome.cpu_seconds:.1f} CPU s)"}
            elif outcome.clock == "disk":
                status = {"status": "output", "clock": "",
                          "reason": f"the notebook wrote more than {DISK_BACKSTOP * self.limits.disk_mb:g} MiB "
                                    f"or {DISK_BACKSTOP * self.limits.max_files} files to its folder"}
            elif outcome.memory_kills and (status is None or status["status"] != "ok"):
                status = {"status": "memory", "clock": "",
                          "reason": f"the notebook's processes held more than {self.limits.total_memory_mb} MiB "
                                    f"together, and the kernel killed {outcome.memory_kills} of them"}
            elif status is None:
                memory = "MemoryError" in outcome.stderr or "Cannot allocate memory" in outcome.stderr
                last = [line for line in outcome.stderr.splitlines() if line.strip()][-1:] or [""]
                status = {"status": "memory" if memory else "crashed", "clock": "",
                          "reason": f"the runner exited with code {outcome.returncode} and no result "
                                    f"({last[0][:300]})"}
            kept = self.work_root / f"records-{uuid.uuid4().hex[:8]}"
            _copy_records(records, kept)
            return PhaseResult(executed_nb, status["status"], status["reason"], kept,
                               status["clock"] if status["status"] == "timeout" else "")
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def _copy_records(src: Path, dst: Path, max_bytes: int = 256 << 20) -> None:
    """Copy the regular ``.json``/``.npy`` files a probe wrote (no links, no folders, capped)."""
    dst.mkdir(mode=0o755)
    total = 0
    if not src.is_dir() or src.is_symlink():
        return
    for entry in os.scandir(src):
        if not entry.name.endswith((".json", ".npy")) or not entry.is_file(follow_symlinks=False):
            continue
        data = read_untrusted(Path(entry.path), max_bytes - total)
        if data is None:
            continue
        total += len(data)
        (dst / entry.name).write_bytes(data)
        os.chmod(dst / entry.name, 0o644)


def _probe_outcomes(nb, run: PhaseResult) -> dict[str, tuple[str, dict | None]]:
    """Per test cell: ("ok" | "error" | "not run", the error output)."""
    executed = run.notebook
    aligned = executed is not None and len(executed.get("cells", [])) == len(nb.cells)
    outcomes = {}
    for i, cell in enumerate(nb.cells):
        if not nbcells.is_test_cell(cell):
            continue
        grade_id = nbcells.nbgrader_meta(cell)["grade_id"]
        theirs = executed.cells[i] if aligned else None
        outputs = [o for o in (_clean_output(o) for o in (theirs or {}).get("outputs", [])) if o]
        errors = [o for o in outputs if o.output_type == "error"]
        if errors:
            outcomes[grade_id] = ("error", errors[0])
        elif theirs is not None and theirs.get("execution_count") is not None:
            outcomes[grade_id] = ("ok", None)
        else:
            why = run.reason or "the submission stopped before this test"
            outcomes[grade_id] = ("not run", _error("NotRun", f"this test did not run: {why}"))
    return outcomes


def _merge(nb, student_run: PhaseResult, probes: dict, check_run: PhaseResult, limits: Limits) -> None:
    """Outputs into ``nb``: the student's for their cells, the checks' for the test cells."""
    executed = student_run.notebook
    aligned = executed is not None and len(executed.get("cells", [])) == len(nb.cells)
    checks = {}
    for cell in (check_run.notebook.cells if check_run.notebook is not None else []):
        grade_id = cell.get("metadata", {}).get("grade_id")
        if grade_id:
            checks[grade_id] = cell
    cap = int(limits.max_output_mb * 2**20)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if not nbcells.is_test_cell(cell):
            theirs = executed.cells[i] if aligned else {}
            cell.outputs = [o for o in (_clean_output(o) for o in theirs.get("outputs", [])) if o]
            if len(json.dumps(cell.outputs)) > cap:
                cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="[output removed: over the cap]\n")]
            continue
        grade_id = nbcells.nbgrader_meta(cell)["grade_id"]
        state, error = probes[grade_id]
        if state != "ok":
            cell.outputs = [error]
            continue
        check = checks.get(grade_id)
        if check is None or check.get("execution_count") is None:
            cell.outputs = [_error("CheckNotRun", f"the checks did not run: {check_run.reason}")]
            continue
        # stderr (library warnings) never costs marks: nbgrader scores any stderr as 0
        cell.outputs = [o for o in (_clean_output(o) for o in check.get("outputs", []))
                        if o and not (o.output_type == "stream" and o.name == "stderr")]


def _grade(job: Job, run: _Run) -> tuple[nbformat.NotebookNode, str, str, str]:
    """(graded notebook, status, reason, clock) of one job."""
    source = nbformat.reads(job.source, as_version=4)
    release = nbformat.reads(job.release, as_version=4) if job.release is not None else None
    empty = nbformat.v4.new_notebook()
    if job.submission is None:
        status = "invalid" if job.submission_exists else "missing"
        reason = (f"{job.name} is not a regular file under {MAX_NOTEBOOK_BYTES >> 20} MB"
                  if job.submission_exists else f"no {job.name} submitted")
        return not_run(nbcells.rebuild(source, empty).notebook, reason), status, reason, ""
    try:
        submission = nbformat.reads(job.submission.decode("utf-8"), as_version=4)
        if not isinstance(submission.get("cells"), list):
            raise ValueError("no list of cells")
    except Exception as err:  # noqa: BLE001 - any parse failure of untrusted bytes is "invalid"
        reason = f"{job.name} is not a valid notebook ({type(err).__name__}: {str(err)[:200]})"
        return not_run(nbcells.rebuild(source, empty).notebook, reason), "invalid", reason, ""
    rebuilt = nbcells.rebuild(source, submission, release)
    graded = rebuilt.notebook
    label = f"{job.student}-{job.stem}"
    student_run = run.phase(nbcells.student_phase(graded), label + "-student")
    probes = _probe_outcomes(graded, student_run)
    ok = {g for g, (state, _) in probes.items() if state == "ok"}
    if ok:
        check_run = run.phase(nbcells.check_phase(graded, ok), label + "-check", student_run.records)
        shutil.rmtree(check_run.records, ignore_errors=True)
    else:  # no probe finished: nothing to check
        check_run = PhaseResult(nbformat.v4.new_notebook(), "ok", "")
    shutil.rmtree(student_run.records, ignore_errors=True)
    _merge(graded, student_run, probes, check_run, job.limits)
    status, reasons = "graded", []
    if student_run.status != "ok":
        status, reasons = student_run.status, [student_run.reason]
    if check_run.status != "ok":
        reasons.append(f"the checks did not finish ({check_run.status}: {check_run.reason})")
        status = status if status != "graded" else "check-failed"
    if rebuilt.tampering:
        reasons.append("changed outside the answers (ignored): " + "; ".join(rebuilt.tampering))
        status = "tampered" if status == "graded" else status
    if rebuilt.missing_answers:
        reasons.append("no answer cell: " + ", ".join(rebuilt.missing_answers))
    return graded, status, " | ".join(reasons), student_run.clock


WORK_PREFIX = "course-grade-"  # + the grader's pid + "-": whose work it is


@functools.lru_cache(maxsize=1)
def remove_abandoned_work(folder: str | None = None) -> list[str]:
    """Remove the work folders and memory cgroups of graders that are gone; once per process.

    A grader killed mid-job (a Dask worker's process, ``kill -9``) cannot
    clean up; its folder holds a submission and hidden tests. Only folders
    whose pid is not alive are removed (a reused pid keeps one until the
    next sweep after that process ends). Returns what it removed.
    """
    removed = []
    root = Path(folder or tempfile.gettempdir())
    for path in root.glob(f"{WORK_PREFIX}*-*"):
        if not path.is_dir() or not memory_cgroup.left_by_a_gone_grader(path.name, WORK_PREFIX):
            continue
        failures = []
        shutil.rmtree(path, onerror=lambda function, name, info: failures.append(f"{name}: {info[1]}"))
        if failures:
            logging.getLogger("course-grade").warning("could not remove %s: %s", path, "; ".join(failures[:3]))
        else:
            removed.append(str(path))
    return removed + (memory_cgroup.remove_abandoned() if folder is None else [])  # (the machine's, not a test's)


def grade_job(job: Job, slot: int | None = None, worker: str = "local") -> dict:
    """Grade ``job`` in the sandbox; returns ``Result.as_dict()`` (plain data), never raises for a submission.

    ``slot``: the sandbox uid's slot; None claims a free one on this machine
    (``sandbox.claim_slot``). A failure of the grader itself becomes a
    ``grader-error`` result, so a batch goes on.
    """
    start = time.perf_counter()
    remove_abandoned_work()
    work_root = Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-"))
    os.chmod(work_root, 0o711)
    try:
        with claim_slot(slot) as claimed:
            graded, status, reason, clock = _grade(job, _Run(job, claimed, work_root))
    except Exception as err:  # noqa: BLE001 - recorded as this notebook's row; the batch goes on
        return failure(job, "grader-error", grader_failed(err), worker, time.perf_counter() - start)
    finally:
        shutil.rmtree(work_root, ignore_errors=True)
    return Result(nbformat.writes(graded), status, reason, round(time.perf_counter() - start, 2),
                  cell_scores(graded), clock, worker).as_dict()


def grader_failed(err: BaseException) -> str:
    return f"the grader failed ({type(err).__name__}: {str(err)[:300]}); fix it and run --regrade"


def failure(job: Job, status: str, reason: str, worker: str = "", seconds: float = 0.0) -> dict:
    """The result of a job that could not be graded: every test cell says why, 0 points."""
    empty = nbcells.rebuild(nbformat.reads(job.source, as_version=4), nbformat.v4.new_notebook())
    graded = not_run(empty.notebook, reason)
    return Result(nbformat.writes(graded), status, reason, round(seconds, 2), cell_scores(graded),
                  "", worker).as_dict()


def grade_on_dask_worker(job: Job) -> dict:
    """``grade_job`` as a Dask task: the result names the worker (a wall-clock re-run goes elsewhere)."""
    from distributed import get_worker

    return grade_job(job, worker=get_worker().address)
