"""Grade every submission of an assignment: isolated, parallel, resumable, recorded in nbgrader.

The calling process coordinates; workers grade. For each student notebook
not graded yet, the coordinator reads the inputs into a ``job.Job`` (plain
data) and hands it to an executor: ``LocalExecutor`` (``workers`` threads on
this machine) or ``cluster.DaskExecutor`` (Dask workers, here or on other
machines). A worker runs ``job.grade_job`` (the sandboxed student run and the
checks) and sends back the graded notebook as text with its status.

The coordinator alone writes: each graded notebook and its result in
``DIR/.course-grade/<assignment>/<student>/`` (atomically), then, once a
student's notebooks are all graded, nbgrader's ``Autograde`` (without its
``Execute`` step) records them in the gradebook (one SQLite writer) and the
student's rows go to ``DIR/grades.csv`` (atomically). A batch that is killed
and started again skips every student already in ``grades.csv`` and reuses
every graded notebook already saved, so nothing is graded twice.

A wall-clock timeout (code that waited, or a machine so loaded that the
backstop fired) gets one re-run, on another worker where there is one,
before it is final; the row's reason says so. CPU-time limits are final.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import shutil
import sys
import warnings
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

from tqdm.auto import tqdm

from ..config import data_home as config_data_home
from ..config import show_progress
from ..io import atomic_write_json, atomic_write_text
from .course import KIT_ASSIGNMENTS, assign, is_assigned, nbgrader_path, source_notebooks
from .job import MAX_NOTEBOOK_BYTES, Job, failure, grade_job, grader_failed, read_untrusted
from .sandbox import Limits, isolation

ROW_FIELDS = ("student", "assignment", "notebook", "score", "max_score", "status", "reason")
STATE = ".course-grade"


class LocalExecutor:
    """``workers`` grading threads on this machine (each sandbox is its own process)."""

    def __init__(self, workers: int):
        if workers < 1:
            raise ValueError(f"--workers must be at least 1, got {workers}")
        self.workers = workers
        self.where = f"this machine, {workers} worker{'s' * (workers != 1)}"
        self.pool = ThreadPoolExecutor(workers)
        self.running: dict = {}

    def capacity(self) -> int:
        """Jobs that can run at once."""
        return self.workers

    def submit(self, job: Job, avoid: str = "") -> None:
        """Start grading ``job`` (``avoid``: a worker not to use; one machine has no other)."""
        self.running[self.pool.submit(grade_job, job)] = job

    def __len__(self) -> int:
        return len(self.running)

    def next_done(self) -> tuple[Job, dict]:
        """Wait for any job; returns it and its result (``job.Result`` as a dict)."""
        done, _ = wait(self.running, return_when=FIRST_COMPLETED)
        future = done.pop()
        job = self.running.pop(future)
        try:
            return job, future.result()
        except Exception as err:  # noqa: BLE001 - grade_job failed outside its own guard: this row only
            return job, failure(job, "grader-error", grader_failed(err), "local")

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class Grader:
    """One batch: an assignment in a course folder, the limits, and the coordinator's bookkeeping."""

    def __init__(self, assignment: str, course_dir, limits: Limits = Limits(), data_home=None,
                 log=None):
        self.assignment = assignment
        self.course_dir = Path(course_dir).resolve()
        self.limits = limits
        # the zoo the submissions load from: --data-home, else $COURSE_DATA_HOME, else ~/.cache/course-kit
        self.data_home = config_data_home(data_home)
        self.log = log or (lambda message: tqdm.write(message, file=sys.stderr))  # (beside the bar)
        if isolation().unprivileged_user:
            closed = [p for p in (self.data_home, self.data_home / "models")
                      if p.is_dir() and (os.stat(p).st_mode & 0o005) != 0o005]
            if closed:  # only assignments that load zoo models need it: say so, grade anyway
                self.log(f"warning: {closed[0]} is not readable by other users (mode "
                         f"{os.stat(closed[0]).st_mode & 0o777:o}) and submissions run as an unprivileged "
                         f"user: an assignment that loads zoo models will fail there; run "
                         f"`chmod -R a+rX {self.data_home}` (or pass --data-home)")
        self.state = self.course_dir / STATE / assignment
        self.sources = source_notebooks(self.course_dir, assignment)
        self.hide = (str(self.course_dir),) + ((str(KIT_ASSIGNMENTS),) if KIT_ASSIGNMENTS.is_dir() else ())

    # -- one notebook: the job out, the result back -------------------------------
    def job(self, student: str, source_path: Path) -> Job:
        """Everything a worker needs to grade ``student``'s copy of ``source_path``."""
        release_path = self.course_dir / "release" / self.assignment / source_path.name
        submitted = self.course_dir / "submitted" / student / self.assignment / source_path.name
        return Job(student=student, assignment=self.assignment, name=source_path.name,
                   source=source_path.read_text(),
                   release=release_path.read_text() if release_path.is_file() else None,
                   submission=read_untrusted(submitted, MAX_NOTEBOOK_BYTES),
                   submission_exists=submitted.exists() or submitted.is_symlink(),
                   limits=self.limits, data_home=str(self.data_home), hide=self.hide)

    def result_path(self, student: str, source_path: Path) -> Path:
        return self.state / student / f"{source_path.stem}.result.json"

    def save(self, job: Job, result: dict, first: dict | None = None) -> None:
        """The graded notebook and its result, atomically (``first``: the run a re-run replaced)."""
        folder = self.state / job.student
        saved = {k: result[k] for k in ("status", "reason", "seconds", "scores", "worker")}
        if first is not None:
            saved["reason"] = " | ".join(filter(None, [result["reason"], (
                f"re-run once: the first run (on {first['worker']}) also hit a wall-clock timeout"
                if result["clock"] == "wall" else
                f"graded on a re-run: the first run (on {first['worker']}) hit a wall-clock timeout "
                f"({first['reason']})")]))
            saved["seconds"] = round(first["seconds"] + result["seconds"], 2)
            saved["attempts"] = 2
        atomic_write_text(folder / job.name, result["notebook"])
        atomic_write_json(self.result_path(job.student, Path(job.name)), saved)
        with open(self.state / "executions.log", "a") as log:  # one line per notebook graded to the end
            log.write(f"{job.student}\t{job.stem}\t{saved['seconds']}\t{saved.get('attempts', 1)}\n")

    def results(self, student: str) -> list[dict]:
        return [{"notebook": p.stem, **json.loads(self.result_path(student, p).read_text())}
                for p in self.sources]

    # -- recording -------------------------------------------------------------------
    def record(self, student: str, results: list[dict]) -> list[dict]:
        """nbgrader's Autograde (no Execute) on the graded notebooks, then the CSV rows."""
        from nbgrader.api import Gradebook
        from nbgrader.converters import Autograde
        from nbgrader.coursedir import CourseDirectory
        from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, DeduplicateIds, LimitOutput,
                                            OverwriteCells, OverwriteKernelspec, SaveAutoGrades)

        from .course import _config

        staged = self.course_dir / STATE / "staged" / student / self.assignment
        shutil.rmtree(staged, ignore_errors=True)
        staged.mkdir(parents=True)
        for source_path in self.sources:
            shutil.copy(self.state / student / source_path.name, staged / source_path.name)
        stamp = read_untrusted(self.course_dir / "submitted" / student / self.assignment / "timestamp.txt", 4096)
        if stamp is not None:
            (staged / "timestamp.txt").write_bytes(stamp)
        config = _config(self.course_dir, CourseDirectory=dict(
            submitted_directory=str(Path(STATE) / "staged"), assignment_id=self.assignment, student_id=student),
            Autograde=dict(
                sanitize_preprocessors=[DeduplicateIds, OverwriteKernelspec, OverwriteCells, CheckCellMetadata],
                autograde_preprocessors=[LimitOutput, SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]))
        converter = Autograde(coursedir=CourseDirectory(config=config), config=config)
        converter.force = True
        converter.log.setLevel("ERROR")
        rows = []
        with nbgrader_path(), warnings.catch_warnings():
            # nbgrader 0.9's own SQLAlchemy use warns "not in session" on every autograde; harmless
            warnings.filterwarnings("ignore", message=".*not in session.*")
            converter.start()
        with nbgrader_path(), Gradebook(f"sqlite:///{self.course_dir / 'gradebook.db'}") as gb:
            for result in results:
                nb = gb.find_submission_notebook(result["notebook"], self.assignment, student)
                rows.append({"student": student, "assignment": self.assignment, "notebook": result["notebook"],
                             "score": round(float(nb.score), 4), "max_score": round(float(nb.max_score), 4),
                             "status": result["status"], "reason": result["reason"]})
        return rows

    # -- the batch -------------------------------------------------------------------
    def csv_path(self) -> Path:
        return self.course_dir / "grades.csv"

    def read_rows(self) -> list[dict]:
        if not self.csv_path().is_file():
            return []
        with open(self.csv_path(), newline="") as handle:
            return list(csv.DictReader(handle))

    def write_rows(self, rows: list[dict]) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=ROW_FIELDS)
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: (r["assignment"], r["student"], r["notebook"])))
        atomic_write_text(self.csv_path(), buffer.getvalue())

    def students(self) -> list[str]:
        folder = self.course_dir / "submitted"
        if not folder.is_dir():
            raise FileNotFoundError(f"no submissions: {folder} does not exist (nbgrader's layout: "
                                    f"submitted/<student>/{self.assignment}/*.ipynb)")
        return sorted(p.name for p in folder.iterdir()
                      if p.is_dir() and not p.is_symlink() and (p / self.assignment).exists())

    def run(self, executor=None, regrade: bool = False, workers: int = 1) -> list[dict]:
        """Grade every submission not yet in grades.csv; returns this assignment's rows.

        ``executor``: a ``LocalExecutor`` or ``cluster.DaskExecutor`` (None: a
        ``LocalExecutor(workers)``, closed at the end).
        """
        own = executor is None
        executor = LocalExecutor(workers) if own else executor
        if hasattr(executor, "log"):  # the executor's own messages (a stuck job sent again) go beside the batch's
            executor.log = self.log
        rows = self.read_rows()
        if regrade:
            rows = [r for r in rows if r["assignment"] != self.assignment]
            shutil.rmtree(self.state, ignore_errors=True)
        done = {r["student"] for r in rows if r["assignment"] == self.assignment}
        todo = {s: [p for p in self.sources if not self.result_path(s, p).is_file()]
                for s in self.students() if s not in done}
        self.log(f"grading {self.assignment}: {len(todo)} to grade, {len(done)} already in "
                 f"{self.csv_path().name}; on {executor.where}")
        for line in isolation().describe():
            self.log(f"  isolation: {line}")
        self.state.mkdir(parents=True, exist_ok=True)
        firsts: dict[tuple[str, str], dict] = {}  # a re-run's first result

        def finish(student: str) -> None:
            nonlocal rows
            new = self.record(student, self.results(student))
            rows = [r for r in rows if not (r["assignment"] == self.assignment and r["student"] == student)]
            rows += new
            self.write_rows(rows)
            for row in new:
                self.log(f"  {student}/{row['notebook']}: {row['score']:g}/{row['max_score']:g} "
                         f"{row['status']}{' - ' + row['reason'] if row['reason'] else ''}")

        bar = tqdm(total=sum(map(len, todo.values())), desc=f"grading {self.assignment}", unit="notebook",
                   disable=not show_progress(), file=sys.stderr)
        # Jobs go out a few at a time (each holds a submission's bytes): twice what can run at once.
        queue = iter([(student, path) for student, paths in todo.items() for path in paths])

        def top_up() -> None:
            window = max(4, 2 * executor.capacity())  # (asks a Dask scheduler once per call)
            while len(executor) < window:
                item = next(queue, None)
                if item is None:
                    return
                executor.submit(self.job(*item))

        try:
            for student, paths in todo.items():
                if not paths:  # graded before a kill, not yet recorded
                    finish(student)
            top_up()
            while len(executor):
                job, result = executor.next_done()
                key = (job.student, job.name)
                if result["clock"] == "wall" and job.attempt == 1:
                    firsts[key] = result
                    self.log(f"  {job.student}/{job.stem}: wall-clock timeout on {result['worker']}; "
                             f"running it once more")
                    executor.submit(dataclasses.replace(job, attempt=2), avoid=result["worker"])
                    continue
                self.save(job, result, firsts.pop(key, None))
                bar.update()
                if all(self.result_path(job.student, p).is_file() for p in self.sources):
                    finish(job.student)
                top_up()
        finally:
            bar.close()
            if own:
                executor.close()
        return [r for r in rows if r["assignment"] == self.assignment]


def grade(assignment: str, course_dir, workers: int = 1, limits: Limits = Limits(), data_home=None,
          regrade: bool = False, log=None, executor=None) -> list[dict]:
    """Grade ``DIR/submitted/*/<assignment>/`` (see the module docstring); returns the rows.

    ``executor``: where the jobs run (default: ``workers`` threads here).
    """
    course_dir = Path(course_dir).resolve()
    if not is_assigned(course_dir, assignment):
        assign(assignment, course_dir)
    return Grader(assignment, course_dir, limits, data_home, log).run(executor, regrade, workers)
