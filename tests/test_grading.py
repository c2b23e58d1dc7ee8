"""Grading: probe/check cells, rebuilt submissions, and a hostile batch killed halfway and resumed."""
from __future__ import annotations

import csv
import hashlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest

from course_lib.grading import cells as nbcells
from course_lib.grading import record as rec
from course_lib.grading.sandbox import FIRST_SANDBOX_UID, Limits, isolation

from .grading.corpus import cases, submission
from .grading.tiny import TEST_ADD, source_notebook

WORKERS = 4  # the grader at more slots than cores: submissions wait on time limits and kernel starts
LIMITS = ["--cell-timeout", "4", "--timeout", "40", "--memory-mb", "1024", "--max-output-mb", "1"]
CASE_NAMES = [c.name for c in cases(Path("/course"))]


# -- cells and records (no sandbox) ------------------------------------------------------------

def test_split_test_separates_probe_from_check_and_keeps_line_numbers():
    probe, check = nbcells.split_test(TEST_ADD)
    assert "assert" not in probe and "record(" in probe and "add_hidden" in probe
    assert "record(" not in check and check.count("assert") == 2
    lines = TEST_ADD.splitlines()
    for part in (probe, check):  # a traceback's line number points at the cell's own line
        assert all(line == lines[i] for i, line in enumerate(part.splitlines()) if line)
    with pytest.raises(ValueError, match="no '# CHECK' line"):
        nbcells.split_test("record('x', 1)\nassert True\n")
    with pytest.raises(ValueError, match="must start its line"):
        nbcells.split_test("if True:\n    # CHECK\n    pass\n")


def test_source_checks_name_the_cell_to_fix():
    nb = source_notebook()
    nb.cells[3].metadata.nbgrader["locked"] = False
    with pytest.raises(ValueError, match="test_add.*lock test cells"):
        nbcells.check_source_notebook(nb, "tiny.ipynb")
    nb = source_notebook()
    nb.cells[5].metadata.nbgrader["grade_id"] = "test_add"
    with pytest.raises(ValueError, match="grade_id used twice: test_add"):
        nbcells.check_source_notebook(nb, "tiny.ipynb")


def test_rebuild_takes_only_the_answers_from_the_submission():
    source = source_notebook()
    theirs = nbformat.from_dict(source)
    theirs.cells[2].source = "def add(a, b):\n    return 42\n"  # their answer
    theirs.cells[3].source = "record('add', [3, 0])\n# CHECK\nassert True\n"  # a weakened test
    theirs.cells[3].metadata.nbgrader["points"] = 100
    del theirs.cells[5]  # a deleted test
    theirs.cells.append(nbformat.v4.new_code_cell("add = None"))  # an added cell
    rebuilt = nbcells.rebuild(source, theirs, release=source)
    sources = [c.source for c in rebuilt.notebook.cells]
    assert sources[2] == "def add(a, b):\n    return 42\n"
    assert sources[3] == TEST_ADD and sources[5] == source.cells[5].source and "add = None" not in sources
    assert rebuilt.notebook.cells[3].metadata.nbgrader["points"] == 1
    assert rebuilt.tampering == ["changed the nbgrader metadata of test_add", "edited test_add",
                                 "deleted test_mean"]
    assert nbcells.student_phase(rebuilt.notebook).cells[3].source == nbcells.split_test(TEST_ADD)[0]
    checks = nbcells.check_phase(rebuilt.notebook, {"test_mean"})
    assert [c.source for c in checks.cells] == [source.cells[1].source, nbcells.split_test(source.cells[5].source)[1]]


def test_records_round_trip_as_plain_data_in_both_modes(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    value = {"t": torch.arange(3.0, requires_grad=True) * 2, "n": [1, 2.5, "s", None, True], "a": np.eye(2)}
    monkeypatch.delenv(rec.RECORDS_ENV, raising=False)
    rec.record("v", value)
    in_memory = rec.recorded("v")
    monkeypatch.setenv(rec.RECORDS_ENV, str(tmp_path))
    rec.record("v", value)
    on_disk = rec.recorded("v")
    for got in (in_memory, on_disk):
        assert type(got["t"]) is np.ndarray and got["t"].tolist() == [0.0, 2.0, 4.0]
        assert got["n"] == [1, 2.5, "s", None, True] and np.array_equal(got["a"], np.eye(2))
    with pytest.raises(TypeError, match="cannot store a object"):
        rec.record("bad", object())
    with pytest.raises(TypeError, match="dtype object"):
        rec.record("bad", np.array([object()]))
    with pytest.raises(KeyError, match="did not finish"):
        rec.recorded("never")
    np.save(tmp_path / "evil.0.npy", np.array([object()]), allow_pickle=True)  # a forged pickled array
    (tmp_path / "evil.json").write_text('{"value": {"array": 0}, "arrays": 1}')
    with pytest.raises(ValueError, match="allow_pickle"):
        rec.recorded("evil")


def test_grading_commands_import_no_ml_code():
    code = ("import sys\nfrom course_lib.cli import main\n"
            "try:\n    main(['grade', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'torchvision', 'timm', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("[]"), out


def test_memory_is_found_in_an_error_or_at_the_end_of_a_stderr_traceback():
    from course_lib.grading.execute import memory_error_in

    def notebook(*outputs):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("y = 2")]
        nb.cells[1].outputs = list(outputs)
        return nb

    flush_failed = "ERROR:tornado.application:Exception in callback\nTraceback (most recent call last):\n" \
                   "  File \"iostream.py\", line 804, in _flush_buffers\n    data = buffer.getvalue()\nMemoryError\n"
    assert memory_error_in(notebook(nbformat.v4.new_output("stream", name="stderr", text=flush_failed))) == 1
    assert memory_error_in(notebook(nbformat.v4.new_output("error", ename="MemoryError", evalue="", traceback=[]))) == 1
    assert memory_error_in(notebook(nbformat.v4.new_output(
        "stream", name="stderr", text="OSError: [Errno 12] Cannot allocate memory\n"))) == 1
    assert memory_error_in(notebook(nbformat.v4.new_output("stream", name="stdout", text=flush_failed))) is None
    assert memory_error_in(notebook(nbformat.v4.new_output(
        "stream", name="stderr", text="warning: a MemoryError is likely with this batch size\n"))) is None


def test_limits_reject_nonsense():
    with pytest.raises(ValueError, match="memory_mb must be positive"):
        Limits(memory_mb=0)


@pytest.mark.slow
def test_a_grader_failure_on_one_notebook_is_recorded_and_the_batch_goes_on(tmp_path, monkeypatch):
    from course_lib.grading.batch import Grader, grade
    from course_lib.grading.course import assign

    (tmp_path / "source" / "tiny").mkdir(parents=True)
    nbformat.write(source_notebook(), tmp_path / "source" / "tiny" / "tiny.ipynb")
    release = nbformat.read(assign("tiny", tmp_path) / "tiny.ipynb", as_version=4)
    for student in ("a", "b"):
        (tmp_path / "submitted" / student / "tiny").mkdir(parents=True)
        nbformat.write(release, tmp_path / "submitted" / student / "tiny" / "tiny.ipynb")
    original = Grader.grade_notebook

    def flaky(self, student, source_path, slot):
        if student == "b":
            raise RuntimeError("disk full")
        return original(self, student, source_path, slot)

    monkeypatch.setattr(Grader, "grade_notebook", flaky)
    rows = {r["student"]: r for r in grade("tiny", tmp_path, log=lambda message: None)}
    assert rows["a"]["status"] == "graded"
    assert rows["b"]["status"] == "grader-error" and "disk full" in rows["b"]["reason"]
    assert float(rows["b"]["score"]) == 0.0


# -- the hostile batch ---------------------------------------------------------------------

def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rows(course: Path) -> list[dict]:
    if not (course / "grades.csv").is_file():
        return []
    with open(course / "grades.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def hostile_batch(tmp_path_factory):
    """The corpus's batch (every hostile case), killed (SIGKILL) once 8 rows are written, then run again to the end."""
    from course_lib.grading.course import assign

    course = tmp_path_factory.mktemp("course")
    server = socket.create_server(("127.0.0.1", 0))  # what the "network" submission tries to reach
    port = server.getsockname()[1]
    (course / "source" / "tiny").mkdir(parents=True)
    nbformat.write(source_notebook(), course / "source" / "tiny" / "tiny.ipynb")
    release = nbformat.read(assign("tiny", course) / "tiny.ipynb", as_version=4)
    corpus = cases(course, port)
    for case in corpus:
        path = course / "submitted" / case.name / "tiny" / "tiny.ipynb"
        path.parent.mkdir(parents=True)
        made = submission(case, release, course)
        path.write_text(made) if isinstance(made, str) else nbformat.write(made, path)
    secrets = {p: _digest(p) for p in [course / "source" / "tiny" / "tiny.ipynb",
                                       course / "submitted" / "honest_1" / "tiny" / "tiny.ipynb"]}
    command = [sys.executable, "-m", "course_lib.cli", "grade", "tiny", "--course-dir", str(course),
               "--workers", str(WORKERS), *LIMITS]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while len(_rows(course)) < 8 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    rows_at_kill = len(_rows(course))
    second = subprocess.run(command, capture_output=True, text=True, timeout=600)
    server.close()
    assert second.returncode == 0, second.stderr[-3000:]
    return {"course": course, "corpus": {c.name: c for c in corpus}, "rows": _rows(course),
            "rows_at_kill": rows_at_kill, "secrets": secrets, "log": second.stderr}


@pytest.mark.slow
@pytest.mark.parametrize("name", CASE_NAMES)
def test_each_submission_gets_the_grade_it_deserves(hostile_batch, name):
    case = hostile_batch["corpus"][name]
    if case.isolated and not isolation().namespaces:
        pytest.skip("needs namespaces and a sandbox uid (root with unshare, setpriv and ip); "
                    "the batch log says which limits were in force")
    (row,) = [r for r in hostile_batch["rows"] if r["student"] == name]
    assert row["status"] in case.status and case.fair(float(row["score"])), row
    assert float(row["max_score"]) == 3.0
    if row["status"] != "graded":
        assert row["reason"], "every failure says why"


@pytest.mark.slow
def test_killed_batch_resumes_without_grading_anything_twice(hostile_batch):
    course = hostile_batch["course"]
    assert 8 <= hostile_batch["rows_at_kill"] < len(CASE_NAMES), "the kill came halfway"
    assert sorted(r["student"] for r in hostile_batch["rows"]) == sorted(CASE_NAMES)
    log = (course / ".course-grade" / "tiny" / "executions.log").read_text().splitlines()
    finished = [line.split("\t")[0] for line in log]
    assert sorted(finished) == sorted(CASE_NAMES), "each submission is graded exactly once"


@pytest.mark.slow
def test_gradebook_is_intact_and_agrees_with_the_csv(hostile_batch):
    from nbgrader.api import Gradebook

    from course_lib.grading.course import nbgrader_path

    course = hostile_batch["course"]
    with sqlite3.connect(course / "gradebook.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with nbgrader_path(), Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for row in hostile_batch["rows"]:
            nb = gb.find_submission_notebook("tiny", "tiny", row["student"])
            assert nb.score == pytest.approx(float(row["score"])), row
    for path, digest in hostile_batch["secrets"].items():
        assert _digest(path) == digest, f"{path} was changed by a submission"
    # nbgrader's own CSV export reads the same scores (written elsewhere than the kit's grades.csv)
    nbgrader = Path(sys.executable).parent / "nbgrader"
    env = dict(os.environ, PATH=f"{nbgrader.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    subprocess.run([str(nbgrader), "export", "--to", "nbgrader_export.csv"], cwd=course, env=env,
                   capture_output=True, text=True, check=True)
    with open(course / "nbgrader_export.csv", newline="") as handle:
        exported = {r["student_id"]: float(r["raw_score"]) for r in csv.DictReader(handle)}
    assert exported == {r["student"]: float(r["score"]) for r in hostile_batch["rows"]}


@pytest.mark.slow
def test_nothing_is_left_running(hostile_batch):
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        uid = int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
        if FIRST_SANDBOX_UID <= uid < FIRST_SANDBOX_UID + WORKERS or "sleep 1000" in cmdline:
            left.append((pid, uid, cmdline))
    assert not left


@pytest.mark.slow
def test_feedback_is_written_for_every_graded_student(hostile_batch):
    course = hostile_batch["course"]
    result = subprocess.run([sys.executable, "-m", "course_lib.cli", "feedback", "tiny", "--course-dir",
                             str(course)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    pages = {p.parent.parent.name for p in (course / "feedback").glob("*/tiny/tiny.html")}
    assert pages == set(CASE_NAMES)
    page = (course / "feedback" / "partial_1" / "tiny" / "tiny.html").read_text()
    assert "Score: 1.0" in page or "1.0 / 3.0" in page
