"""Grade every submission of an assignment: isolated, parallel, resumable, recorded in nbgrader.

For each student, in a worker slot (``workers`` run at once):

1. read the submission (not JSON -> ``invalid``), and ``rebuild`` it from the
   source: the instructor's cells, the student's answers;
2. run it in the sandbox with the test cells cut down to their probes (the
   student's process: every limit of ``sandbox.py``);
3. run the checks of the probes that finished in a second sandboxed process
   that never runs student code, on the recorded values;
4. merge both into one graded notebook, saved atomically in
   ``DIR/.course-grade/<assignment>/<student>/`` with its status.

Then, one student at a time in the calling process, nbgrader's ``Autograde``
(without its ``Execute`` step) records the graded notebook in the gradebook,
and the student's rows are written to ``DIR/grades.csv`` (atomically). A batch
that is killed and started again skips every student already in
``grades.csv`` and reuses every graded notebook already saved, so nothing is
executed twice.
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import stat
import sys
import tempfile
import threading
import time
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import nbformat

from ..config import data_home as config_data_home
from ..io import atomic_write_json, atomic_write_text
from . import cells as nbcells
from .course import KIT_ASSIGNMENTS, assign, is_assigned, nbgrader_path, source_notebooks
from .sandbox import Limits, isolation, prepare_folder, run_sandboxed, sandbox_env, slot_uid

ROW_FIELDS = ("student", "assignment", "notebook", "score", "max_score", "status", "reason")
STATE = ".course-grade"
MAX_NOTEBOOK_BYTES = 64 << 20


@dataclass
class PhaseResult:
    notebook: nbformat.NotebookNode | None  # executed copy (untrusted when it is the student's)
    status: str  # ok, timeout, memory, crashed, output
    reason: str
    records: Path | None = None


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


class Grader:
    """One batch: an assignment in a course folder, the limits, and where the sandboxes live."""

    def __init__(self, assignment: str, course_dir, limits: Limits = Limits(), data_home=None,
                 log=None):
        self.assignment = assignment
        self.course_dir = Path(course_dir).resolve()
        self.limits = limits
        # the zoo the submissions load from: --data-home, else $COURSE_DATA_HOME, else ~/.cache/course-kit
        self.data_home = config_data_home(data_home)
        self.log = log or (lambda message: print(message, file=sys.stderr))
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
        self.hide = [self.course_dir] + ([KIT_ASSIGNMENTS] if KIT_ASSIGNMENTS.is_dir() else [])
        self.work_root = Path(tempfile.mkdtemp(prefix="course-grade-"))
        os.chmod(self.work_root, 0o711)

    # -- one sandboxed run ----------------------------------------------------
    def run_phase(self, nb, slot: int, label: str, records_in: Path | None = None) -> PhaseResult:
        folder = prepare_folder(self.work_root / f"{label}-{uuid.uuid4().hex[:8]}", slot)
        try:
            nbformat.write(nb, folder / "in.ipynb")
            records = folder / "records"
            if records_in is not None:
                shutil.copytree(records_in, records)
            if isolation().unprivileged_user:
                owned = [folder / "in.ipynb"] + ([records, *records.iterdir()] if records.exists() else [])
                for path in owned:
                    os.chown(path, slot_uid(slot), slot_uid(slot))
            extra = {"COURSE_GRADING_RECORDS": str(records), "PYTHONPATH": "",
                     "COURSE_DATA_HOME": str(self.data_home)}
            command = [sys.executable, "-m", "course_lib.grading.execute", "in.ipynb", "out.ipynb",
                       "status.json", "--cell-timeout", str(self.limits.cell_timeout),
                       "--max-output-bytes", str(int(self.limits.max_output_mb * 2**20))]
            outcome = run_sandboxed(command, folder, slot, self.limits, self.hide, sandbox_env(folder, extra),
                                    expose=[self.data_home])
            executed = read_untrusted(folder / "out.ipynb", MAX_NOTEBOOK_BYTES)
            status_bytes = read_untrusted(folder / "status.json", 1 << 16)
            try:
                executed_nb = nbformat.reads(executed.decode(), as_version=4) if executed else None
            except Exception:  # noqa: BLE001 - untrusted bytes: any parse failure means "no notebook"
                executed_nb = None
            try:
                status = json.loads(status_bytes) if status_bytes else {}
                status = {"status": str(status["status"]), "reason": str(status.get("reason", ""))}
            except (ValueError, KeyError, TypeError):
                status = None
            if status and status["status"] == "crashed" and "MemoryError" in outcome.stderr:
                status = {"status": "memory", "reason": f"the kernel died out of memory "
                                                        f"(over {self.limits.memory_mb} MiB)"}
            if outcome.timed_out:
                status = {"status": "timeout",
                          "reason": f"the notebook ran longer than {self.limits.timeout:g} s in all"}
            elif status is None:
                memory = "MemoryError" in outcome.stderr or "Cannot allocate memory" in outcome.stderr
                last = [line for line in outcome.stderr.splitlines() if line.strip()][-1:] or [""]
                status = {"status": "memory" if memory else "crashed",
                          "reason": f"the runner exited with code {outcome.returncode} and no result "
                                    f"({last[0][:300]})"}
            kept = self.work_root / f"records-{uuid.uuid4().hex[:8]}"
            self._copy_records(records, kept)
            return PhaseResult(executed_nb, status["status"], status["reason"], kept)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    @staticmethod
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

    # -- one notebook -----------------------------------------------------------
    def grade_notebook(self, student: str, source_path: Path, slot: int) -> tuple[nbformat.NotebookNode, dict]:
        source = nbformat.read(source_path, as_version=4)
        release_path = self.course_dir / "release" / self.assignment / source_path.name
        release = nbformat.read(release_path, as_version=4) if release_path.is_file() else None
        submitted = self.course_dir / "submitted" / student / self.assignment / source_path.name
        raw = read_untrusted(submitted, MAX_NOTEBOOK_BYTES)
        empty = nbformat.v4.new_notebook()
        if raw is None:
            exists = submitted.exists() or submitted.is_symlink()
            status = "invalid" if exists else "missing"
            reason = (f"{submitted.name} is not a regular file under {MAX_NOTEBOOK_BYTES >> 20} MB"
                      if exists else f"no {submitted.name} submitted")
            return self._not_run(nbcells.rebuild(source, empty).notebook, reason), {"status": status, "reason": reason}
        try:
            submission = nbformat.reads(raw.decode("utf-8"), as_version=4)
            if not isinstance(submission.get("cells"), list):
                raise ValueError("no list of cells")
        except Exception as err:  # noqa: BLE001 - any parse failure of untrusted bytes is "invalid"
            reason = f"{submitted.name} is not a valid notebook ({type(err).__name__}: {str(err)[:200]})"
            return self._not_run(nbcells.rebuild(source, empty).notebook, reason), {"status": "invalid", "reason": reason}
        rebuilt = nbcells.rebuild(source, submission, release)
        graded = rebuilt.notebook
        label = f"{student}-{source_path.stem}"
        student_run = self.run_phase(nbcells.student_phase(graded), slot, label + "-student")
        probes = self._probe_outcomes(graded, student_run)
        ok = {g for g, (state, _) in probes.items() if state == "ok"}
        if ok:
            check_run = self.run_phase(nbcells.check_phase(graded, ok), slot, label + "-check", student_run.records)
            shutil.rmtree(check_run.records, ignore_errors=True)
        else:  # no probe finished: nothing to check
            check_run = PhaseResult(nbformat.v4.new_notebook(), "ok", "")
        shutil.rmtree(student_run.records, ignore_errors=True)
        self._merge(graded, student_run, probes, check_run)
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
        return graded, {"status": status, "reason": " | ".join(reasons)}

    @staticmethod
    def _not_run(nb, reason: str):
        for cell in nb.cells:
            if nbcells.is_test_cell(cell):
                cell.outputs = [_error("NotGraded", reason)]
        return nb

    @staticmethod
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

    def _merge(self, nb, student_run: PhaseResult, probes: dict, check_run: PhaseResult) -> None:
        """Outputs into ``nb``: the student's for their cells, the checks' for the test cells."""
        executed = student_run.notebook
        aligned = executed is not None and len(executed.get("cells", [])) == len(nb.cells)
        checks = {}
        for cell in (check_run.notebook.cells if check_run.notebook is not None else []):
            grade_id = cell.get("metadata", {}).get("grade_id")
            if grade_id:
                checks[grade_id] = cell
        cap = int(self.limits.max_output_mb * 2**20)
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

    # -- one student, all notebooks ----------------------------------------------
    def grade_student(self, student: str, slot: int) -> list[dict]:
        results = []
        for source_path in self.sources:
            folder = self.state / student
            result_path = folder / f"{source_path.stem}.result.json"
            if not result_path.is_file():
                start = time.perf_counter()
                try:
                    graded, result = self.grade_notebook(student, source_path, slot)
                except Exception as err:  # noqa: BLE001 - recorded as this notebook's row; the batch goes on
                    self.log(f"  {student}/{source_path.stem}: the grader failed: {type(err).__name__}: {err}")
                    empty = nbcells.rebuild(nbformat.read(source_path, as_version=4), nbformat.v4.new_notebook())
                    reason = f"the grader failed ({type(err).__name__}: {str(err)[:300]}); fix it and run --regrade"
                    graded, result = self._not_run(empty.notebook, reason), {"status": "grader-error", "reason": reason}
                result["seconds"] = round(time.perf_counter() - start, 2)
                atomic_write_text(folder / source_path.name, nbformat.writes(graded))
                atomic_write_json(result_path, result)
                with open(self.state / "executions.log", "a") as log:  # one line per finished grading
                    log.write(f"{student}\t{source_path.stem}\t{result['seconds']}\n")
            results.append({"notebook": source_path.stem, **json.loads(result_path.read_text())})
        return results

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

    def run(self, workers: int = 1, regrade: bool = False) -> list[dict]:
        """Grade every submission not yet in grades.csv; returns this assignment's rows."""
        if workers < 1:
            raise ValueError(f"--workers must be at least 1, got {workers}")
        rows = self.read_rows()
        if regrade:
            rows = [r for r in rows if r["assignment"] != self.assignment]
            shutil.rmtree(self.state, ignore_errors=True)
        done = {r["student"] for r in rows if r["assignment"] == self.assignment}
        todo = [s for s in self.students() if s not in done]
        self.log(f"grading {self.assignment}: {len(todo)} to grade, {len(done)} already in {self.csv_path().name}; "
                 f"{workers} worker(s)")
        for line in isolation().describe():
            self.log(f"  isolation: {line}")
        slots = list(range(workers))
        slot_lock = threading.Lock()

        def task(student: str) -> list[dict]:
            with slot_lock:
                slot = slots.pop()
            try:
                return self.grade_student(student, slot)
            finally:
                with slot_lock:
                    slots.append(slot)

        try:
            with ThreadPoolExecutor(workers) as pool:
                futures = {pool.submit(task, s): s for s in todo}
                for future in as_completed(futures):
                    student = futures[future]
                    new = self.record(student, future.result())
                    rows = [r for r in rows if not (r["assignment"] == self.assignment and r["student"] == student)]
                    rows += new
                    self.write_rows(rows)
                    for row in new:
                        self.log(f"  {student}/{row['notebook']}: {row['score']:g}/{row['max_score']:g} "
                                 f"{row['status']}{' - ' + row['reason'] if row['reason'] else ''}")
        finally:
            shutil.rmtree(self.work_root, ignore_errors=True)
        return [r for r in rows if r["assignment"] == self.assignment]


def grade(assignment: str, course_dir, workers: int = 1, limits: Limits = Limits(), data_home=None,
          regrade: bool = False, log=None) -> list[dict]:
    """Grade ``DIR/submitted/*/<assignment>/`` (see the module docstring); returns the rows."""
    course_dir = Path(course_dir).resolve()
    if not is_assigned(course_dir, assignment):
        assign(assignment, course_dir)
    return Grader(assignment, course_dir, limits, data_home, log).run(workers, regrade)
