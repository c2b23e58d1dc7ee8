"""Submissions for the grader's tests: honest ones and hostile ones, each with the outcome it deserves.

Every submission starts from the student version of ``tiny`` (``add`` and
``mean``, 1 + 2 points, each test with hidden inputs). ``answers`` replaces
the two answer cells; ``edit`` changes the notebook in other ways. Where a
hostile submission tries to read or reach something, it answers correctly
only if the attempt *failed*, so its score proves the isolation held.
"""
from __future__ import annotations

import copy
import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import nbformat

ADD = "def add(a, b):\n    return a + b\n"
MEAN = "import numpy as np\ndef mean(xs):\n    return float(np.sum(xs)) / len(xs)\n"
WRONG_ADD = "def add(a, b):\n    return a - b\n"
WRONG_MEAN = "def mean(xs):\n    return 2.0\n"


@dataclass
class Case:
    name: str
    answers: tuple[str, str] | None = (ADD, MEAN)  # None: leave the student version's stubs
    edit: Callable | None = None  # edit(notebook, course_dir) -> notebook, or raw text
    status: tuple[str, ...] = ("graded",)  # acceptable statuses
    score: float | tuple[float, ...] = 3.0  # or every score it may fairly get
    isolated: bool = False  # holds only where sandbox.isolation() has namespaces and a sandbox uid

    def fair(self, score: float) -> bool:
        return score in (self.score if isinstance(self.score, tuple) else (self.score,))


def _when_blocked(attempt: str) -> str:
    """``add`` is right only when ``attempt`` (code that should fail) raises OSError."""
    return ("try:\n" + "".join(f"    {line}\n" for line in attempt.splitlines())
            + "    BLOCKED = False\nexcept OSError:\n    BLOCKED = True\n"
            "def add(a, b):\n    return a + b if BLOCKED else a - b\n")


def _test_cells(nb):
    return [c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade")
            and not c.metadata.nbgrader.get("solution")]


def _delete_tests(nb, course_dir):
    nb.cells = [c for c in nb.cells if c not in _test_cells(nb)]
    return nb


def _unlock_tests(nb, course_dir):
    for cell in _test_cells(nb):
        cell.metadata.nbgrader.update(grade=False, locked=False, points=100)
        cell.source = "pass"
    return nb


def _rename_tests(nb, course_dir):
    for cell in _test_cells(nb):
        cell.metadata.nbgrader["grade_id"] += "_renamed"
        cell.source = "assert True"
    return nb


def _add_cells(nb, course_dir):
    """Cells after the tests that would overwrite the functions the tests used (they never run)."""
    nb.cells.append(nbformat.v4.new_code_cell("def add(a, b):\n    return 0\n"))
    return nb


CHEAT_PATCHES = """
import builtins, numpy
builtins.abs = lambda x: 0.0
numpy.allclose = lambda *a, **k: True
numpy.isclose = lambda *a, **k: True
class _Yes(Exception):
    pass
builtins.AssertionError = _Yes
_real_record = record
_answers = {"add": [3, 0], "mean": 2.0}  # the public answers; hidden inputs are unknown
def record(name, value):
    _real_record(name, _answers.get(name, value))
def recorded(name):
    return _answers[name]
import course_lib.grading.record as _r
_r.record = record
_r.recorded = recorded
"""

STARTUP_PLANT = """
import os, pathlib
for folder in [os.path.expanduser("~/.ipython/profile_default/startup"), "/tmp", os.getcwd()]:
    try:
        pathlib.Path(folder).mkdir(parents=True, exist_ok=True)
        pathlib.Path(folder, "00-cheat.py").write_text("import builtins; builtins.abs = lambda x: 0.0\\n")
        pathlib.Path(folder, "sitecustomize.py").write_text("import builtins; builtins.abs = lambda x: 0.0\\n")
    except OSError:
        pass
"""


def cases(course_dir, port: int = 9) -> list[Case]:
    """The corpus; ``course_dir`` is where the secrets a submission must not reach live.

    ``port``: a TCP port the test listens on at the grader's 127.0.0.1 (a
    submission in its own network namespace cannot reach it; one without can).
    """
    source = course_dir / "source" / "tiny" / "tiny.ipynb"
    gradebook = course_dir / "gradebook.db"
    victim = course_dir / "submitted" / "honest_1" / "tiny" / "tiny.ipynb"
    kit = ("import course_lib.grading.course as c\npaths = sorted(c.KIT_ASSIGNMENTS.glob('*/*.ipynb'))\n"
           "open(paths[0] if paths else '/no/kit/assignments', 'rb').read()")
    return [
        # two of each ordinary kind: identical submissions must get identical grades
        *[Case(f"honest_{i}") for i in range(1, 3)],
        *[Case(f"partial_{i}", answers=(ADD, WRONG_MEAN), score=1.0) for i in range(1, 3)],
        *[Case(f"blank_{i}", answers=None, score=0.0) for i in range(1, 3)],
        Case("wrong", answers=(WRONG_ADD, WRONG_MEAN), score=0.0),
        Case("infinite_loop", answers=(ADD, MEAN + "while True:\n    pass\n"), status=("timeout",), score=1.0),
        Case("sleep_forever", answers=(ADD + "import time\ntime.sleep(10**6)\n", MEAN), status=("timeout",),
             score=0.0),
        Case("allocate_50gb", answers=(ADD, MEAN + "hoard = bytearray(50 * 10**9)\n"), status=("memory",)),
        Case("fork_bomb", answers=(ADD, "import os\nwhile True:\n    os.fork()\n" + MEAN),
             status=("graded", "timeout", "crashed", "output"), score=1.0, isolated=True),
        # Which limit trips first depends on the load: the runner sees the flood and stops the run
        # (output), the kernel dies buffering it (memory), or the kernel, or only its output thread
        # (a MemoryError traceback on stderr), runs out of memory and the run goes on (memory): then
        # mean's test passes if the kernel has memory left for it (mean is defined before the flood)
        # and fails if not. add's point is always kept.
        Case("print_gigabytes", answers=(ADD, MEAN + "while True:\n    print('x' * 10**6)\n"),
             status=("output", "memory"), score=(1.0, 3.0)),
        Case("fill_disk", answers=(ADD, MEAN + "import time\nfor i in range(40):\n"
                                         "    open(f'part{i}', 'wb').write(bytes(5 << 20))\n    time.sleep(0.05)\n"
                                         "time.sleep(5)\n"), status=("output",), score=1.0),
        Case("sys_exit", answers=(ADD + "import sys\nsys.exit()\n", MEAN)),
        Case("os_exit", answers=(ADD, MEAN + "import os\nos._exit(1)\n"), status=("crashed",), score=1.0),
        Case("segfault", answers=(ADD, MEAN + "import ctypes\nctypes.string_at(0)\n"), status=("crashed",),
             score=1.0),
        Case("kill_runner", answers=(ADD, MEAN + "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"),
             isolated=True),  # the runner is PID 1 of the sandbox's namespace: the kill is ignored
        Case("network", answers=(_when_blocked(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=3)"),
                                 MEAN), isolated=True),
        Case("read_hidden_tests", answers=(_when_blocked(f"open({str(source)!r}, 'rb').read()"), MEAN),
             isolated=True),
        Case("read_kit_sources", answers=(_when_blocked(kit), MEAN), isolated=True),
        Case("write_gradebook", answers=(
            _when_blocked(f"open({str(gradebook)!r}, 'r+b').write(b'garbage')\n"
                          f"open({str(victim)!r}, 'w').write('{{}}')"), MEAN), isolated=True),
        Case("orphan_process", answers=(ADD + "import subprocess\n"
                                        "subprocess.Popen(['sleep', '1000'], start_new_session=True)\n"
                                        "import os\nif os.fork() == 0:\n    os.setsid()\n    import time\n"
                                        "    time.sleep(1000)\n", MEAN), isolated=True),
        Case("redefine_names", answers=(WRONG_ADD + CHEAT_PATCHES, WRONG_MEAN), score=0.0),
        Case("plant_startup_files", answers=(WRONG_ADD + STARTUP_PLANT, WRONG_MEAN), score=0.0),
        Case("delete_test_cells", edit=_delete_tests, status=("tampered",)),
        Case("unlock_test_cells", answers=(WRONG_ADD, WRONG_MEAN), edit=_unlock_tests, status=("tampered",),
             score=0.0),
        Case("rename_test_cells", answers=(WRONG_ADD, MEAN), edit=_rename_tests, status=("tampered",), score=2.0),
        Case("cells_after_tests", edit=_add_cells),
        Case("not_json", edit=lambda nb, course_dir: "this is not a notebook {", status=("invalid",), score=0.0),
    ]


def submission(case: Case, release, course_dir):
    """The notebook (or raw text) a student with this case would hand in."""
    nb = copy.deepcopy(release)
    if case.answers is not None:
        answers = iter(case.answers)
        for cell in nb.cells:
            if cell.get("metadata", {}).get("nbgrader", {}).get("solution"):
                cell.source = next(answers)
    return case.edit(nb, course_dir) if case.edit else nb


def write_course(course: Path, port: int = 9, extra: tuple[Case, ...] = (), corpus: bool = True) -> list[Case]:
    """A course folder with ``tiny`` assigned and one submission per case (the corpus unless not
    ``corpus``, then ``extra``)."""
    from course_lib.grading.course import assign

    from .tiny import source_notebook

    (course / "source" / "tiny").mkdir(parents=True)
    nbformat.write(source_notebook(), course / "source" / "tiny" / "tiny.ipynb")
    release = nbformat.read(assign("tiny", course) / "tiny.ipynb", as_version=4)
    made_cases = (cases(course, port) if corpus else []) + list(extra)
    for case in made_cases:
        path = course / "submitted" / case.name / "tiny" / "tiny.ipynb"
        path.parent.mkdir(parents=True)
        made = submission(case, release, course)
        path.write_text(made) if isinstance(made, str) else nbformat.write(made, path)
    return made_cases


def read_rows(course: Path) -> list[dict]:
    """``grades.csv``'s rows ([] before the first is written)."""
    if not (course / "grades.csv").is_file():
        return []
    with open(course / "grades.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


CASE_NAMES = [c.name for c in cases(Path("/course"))]
HOSTILE_WORKERS = 4  # the grader at more slots than cores: submissions wait on time limits and kernel starts
LIMITS = ["--cell-timeout", "4", "--timeout", "40", "--memory-mb", "1024", "--max-output-mb", "1",
          "--disk-mb", "64"]
