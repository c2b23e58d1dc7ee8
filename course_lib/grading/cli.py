"""``course assign``, ``course grade`` and ``course feedback``: an instructor's loop in three commands."""
from __future__ import annotations

import argparse
import sys


def add_grading_commands(sub) -> None:
    assign = sub.add_parser("assign", help="release the student version of an assignment (nbgrader)")
    assign.add_argument("assignment", help="a folder of DIR/source/, or one of the kit's assignments/")
    assign.add_argument("--course-dir", required=True, help="nbgrader course folder")
    assign.set_defaults(leaf_parser=assign, func=cmd_assign)

    grade = sub.add_parser("grade", help="grade every submission, isolated, into the gradebook and grades.csv")
    grade.add_argument("assignment")
    grade.add_argument("--course-dir", required=True, help="nbgrader course folder")
    grade.add_argument("--workers", type=int, default=1, help="submissions graded at once (default 1)")
    grade.add_argument("--cell-timeout", type=float, default=60, help="seconds per cell (default 60)")
    grade.add_argument("--timeout", type=float, default=300, help="seconds per notebook in all (default 300)")
    grade.add_argument("--memory-mb", type=int, default=4096, help="memory per process, MiB (default 4096)")
    grade.add_argument("--max-output-mb", type=float, default=10, help="output per notebook, MiB (default 10)")
    grade.add_argument("--processes", type=int, default=256,
                       help="processes and threads per worker (default 256; enforced as an unprivileged user)")
    grade.add_argument("--data-home", default=None,
                       help="data folder the submissions read the model zoo from (default: $COURSE_DATA_HOME "
                            "or ~/.cache/course-kit; it must be readable by all users)")
    grade.add_argument("--regrade", action="store_true", help="grade everyone again, even those in grades.csv")
    grade.set_defaults(leaf_parser=grade, func=cmd_grade)

    feedback = sub.add_parser("feedback", help="HTML feedback for every graded student (nbgrader)")
    feedback.add_argument("assignment")
    feedback.add_argument("--course-dir", required=True, help="nbgrader course folder")
    feedback.set_defaults(leaf_parser=feedback, func=cmd_feedback)


def cmd_assign(args: argparse.Namespace) -> int:
    from .course import assign

    release = assign(args.assignment, args.course_dir)
    print(f"student version: {release}")
    return 0


def cmd_grade(args: argparse.Namespace) -> int:
    from .batch import grade
    from .sandbox import Limits

    limits = Limits(cell_timeout=args.cell_timeout, timeout=args.timeout, memory_mb=args.memory_mb,
                    max_output_mb=args.max_output_mb, processes=args.processes)
    rows = grade(args.assignment, args.course_dir, workers=args.workers, limits=limits,
                 data_home=args.data_home, regrade=args.regrade)
    graded = sum(r["status"] == "graded" for r in rows)
    print(f"{len(rows)} notebooks recorded ({graded} graded, {len(rows) - graded} with a failure); "
          f"see {args.course_dir}/grades.csv", file=sys.stderr)
    return 0


def cmd_feedback(args: argparse.Namespace) -> int:
    from .course import feedback

    pages = feedback(args.assignment, args.course_dir)
    print(f"{len(pages)} feedback pages in {args.course_dir}/feedback/")
    return 0
