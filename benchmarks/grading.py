"""Grading throughput: submissions per minute, isolated (`course grade`) against plain nbgrader.

Makes a course folder with a kit assignment and N submissions (alternately
the solution and the blank student version), then times three runs on the
same submissions: nbgrader's own ``autograde`` (one kernel per submission,
student code and tests together, no limits), and ``course grade`` with 1 and
2 workers (two sandboxed processes per submission: the student's code with
the probes, then the checks). The overhead column compares each with
nbgrader's time per submission. The isolation in force on this machine is
printed above the table and kept in the JSON. Writes results/grading.json.

Usage: .venv/bin/python benchmarks/grading.py [--assignment logit_pairing] [--submissions 8] [--workers 1 2]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402

from course_lib.grading import cells as nbcells  # noqa: E402
from course_lib.grading.batch import grade  # noqa: E402
from course_lib.grading.course import api, assign, nbgrader_path  # noqa: E402
from course_lib.grading.sandbox import isolation  # noqa: E402


def make_course(root: Path, assignment: str, n: int) -> list[str]:
    """A course folder with ``n`` submissions; returns the student names."""
    release = assign(assignment, root)
    students = []
    for path in sorted(release.glob("*.ipynb")):
        given = nbformat.read(path, as_version=4)
        source = nbformat.read(root / "source" / assignment / path.name, as_version=4)
        solved = nbcells.with_answers(given, source)
        for i in range(n):
            student = f"student_{i:03d}"
            folder = root / "submitted" / student / assignment
            folder.mkdir(parents=True, exist_ok=True)
            nbformat.write(solved if i % 2 == 0 else given, folder / path.name)
            students.append(student)
    return sorted(set(students))


def plain_nbgrader(root: Path, assignment: str, students: list[str]) -> float:
    start = time.perf_counter()
    grader = api(root)
    with nbgrader_path(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not in session.*")
        for student in students:
            result = grader.autograde(assignment, student, force=True, create=True)
            if not result["success"]:
                raise RuntimeError(f"nbgrader autograde failed for {student}: {result.get('error')}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignment", default="logit_pairing")
    parser.add_argument("--submissions", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="grading-bench-"))
    try:
        students = make_course(root / "course", args.assignment, args.submissions)
        n = len(students)
        plain = plain_nbgrader(root / "course", args.assignment, students)
        rows = [{"runner": "nbgrader autograde (no isolation)", "workers": 1, "submissions": n,
                 "seconds": round(plain, 2), "per_minute": round(60 * n / plain, 1), "overhead": "1.00x"}]
        for workers in args.workers:
            shutil.rmtree(root / "course" / ".course-grade", ignore_errors=True)
            (root / "course" / "grades.csv").unlink(missing_ok=True)
            start = time.perf_counter()
            rows_graded = grade(args.assignment, root / "course", workers=workers, log=lambda message: None)
            took = time.perf_counter() - start
            if len(rows_graded) != n or any(r["status"] != "graded" for r in rows_graded):
                raise RuntimeError(f"grading went wrong: {rows_graded}")
            rows.append({"runner": "course grade (isolated)", "workers": workers, "submissions": n,
                         "seconds": round(took, 2), "per_minute": round(60 * n / took, 1),
                         "overhead": f"{took / plain:.2f}x"})
    finally:
        shutil.rmtree(root, ignore_errors=True)
    notes = [f"Assignment `{args.assignment}`; limits in force for `course grade`:"]
    notes += [f"  {line}" for line in isolation().describe()]
    report("grading", rows, notes)


if __name__ == "__main__":
    main()
