"""Grading throughput: submissions per minute, isolated (`course grade`) against plain nbgrader.

Makes a course folder with a kit assignment and N submissions (alternately
the solution and the blank student version), then times three runs on the
same submissions: nbgrader's own ``autograde`` (one kernel per submission,
student code and tests together, no limits), ``course grade`` with 1 and
2 workers (two sandboxed processes per submission: the student's code with
the probes, then the checks), and ``course grade --dask`` on a LocalCluster
of 1 and 2 worker processes (started before the clock starts, as a running
cluster would be). The overhead column compares each with nbgrader's time
per submission; the speedup column compares each grader with its own
1-worker row. The isolation in force on this machine is printed above the
table and kept in the JSON. Writes results/grading.json.

Usage: .venv/bin/python benchmarks/grading.py [--assignment logit_pairing] [--submissions 8]
       [--workers 1 2] [--dask-workers 1 2]
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
from course_lib.grading.cluster import DaskExecutor  # noqa: E402
from course_lib.grading.course import api, assign, nbgrader_path  # noqa: E402
from course_lib.grading.sandbox import isolation  # noqa: E402


RUNNERS = {"local": "course grade (isolated)", "dask": "course grade --dask (isolated)"}


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
    parser.add_argument("--dask-workers", type=int, nargs="*", default=[1, 2])
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="grading-bench-"))
    try:
        students = make_course(root / "course", args.assignment, args.submissions)
        n = len(students)
        plain = plain_nbgrader(root / "course", args.assignment, students)
        rows = [{"runner": "nbgrader autograde (no isolation)", "workers": 1, "submissions": n,
                 "seconds": round(plain, 2), "per_minute": round(60 * n / plain, 1), "overhead": "1.00x",
                 "speedup": "1.00x"}]
        runs = [("local", w) for w in args.workers] + [("dask", w) for w in args.dask_workers]
        for kind, workers in runs:
            shutil.rmtree(root / "course" / ".course-grade", ignore_errors=True)
            (root / "course" / "grades.csv").unlink(missing_ok=True)
            executor = DaskExecutor.local(workers) if kind == "dask" else None
            try:
                start = time.perf_counter()
                graded = grade(args.assignment, root / "course", workers=workers, log=lambda message: None,
                               executor=executor)
                took = time.perf_counter() - start
            finally:
                if executor is not None:
                    executor.close()
            if len(graded) != n or any(r["status"] != "graded" for r in graded):
                raise RuntimeError(f"grading went wrong: {graded}")
            one = next((r["seconds"] for r in rows if r["runner"] == RUNNERS[kind] and r["workers"] == 1), took)
            rows.append({"runner": RUNNERS[kind], "workers": workers, "submissions": n,
                         "seconds": round(took, 2), "per_minute": round(60 * n / took, 1),
                         "overhead": f"{took / plain:.2f}x", "speedup": f"{one / took:.2f}x"})
    finally:
        shutil.rmtree(root, ignore_errors=True)
    notes = [f"Assignment `{args.assignment}`; limits in force for `course grade`:"]
    local = next((r for r in rows if r["runner"] == RUNNERS["local"] and r["workers"] == 1), None)
    dask = next((r for r in rows if r["runner"] == RUNNERS["dask"] and r["workers"] == 1), None)
    if local and dask:
        extra = (dask["seconds"] - local["seconds"]) / n
        notes.insert(0, f"Dask's overhead per submission (1 worker, against the local grader's 1 worker): "
                        f"{extra:+.2f} s, {100 * extra / (local['seconds'] / n):+.1f}% of a submission's "
                        f"grading time ({local['seconds'] / n:.2f} s)")
    notes += [f"  {line}" for line in isolation().describe()]
    report("grading", rows, notes)


if __name__ == "__main__":
    main()
