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
    grade.add_argument("--workers", type=int, default=1,
                       help="submissions graded at once (default 1); with --dask, Dask worker processes")
    grade.add_argument("--cell-timeout", type=float, default=60, help="CPU seconds per cell (default 60)")
    grade.add_argument("--timeout", type=float, default=300, help="CPU seconds per notebook in all (default 300)")
    grade.add_argument("--wall-factor", type=float, default=3,
                       help="wall-clock backstop, as a multiple of each CPU limit, for code that waits "
                            "(default 3; a wall-clock timeout is re-run once)")
    grade.add_argument("--memory-mb", type=int, default=4096, help="memory per process, MiB (default 4096)")
    grade.add_argument("--total-memory-mb", type=int, default=6144,
                       help="memory of all a notebook's processes and its /tmp together, MiB (default 6144; "
                            "enforced where a memory cgroup can be made: the report's first lines say)")
    grade.add_argument("--max-output-mb", type=float, default=10, help="output per notebook, MiB (default 10)")
    grade.add_argument("--disk-mb", type=float, default=512,
                       help="files a notebook may write to its folder, MiB; also the size of its own /tmp "
                            "(default 512)")
    grade.add_argument("--processes", type=int, default=256,
                       help="processes and threads per worker (default 256; enforced as an unprivileged user)")
    grade.add_argument("--data-home", default=None,
                       help="data folder the submissions read the model zoo from (default: $COURSE_DATA_HOME "
                            "or ~/.cache/course-kit; it must be readable by all users)")
    grade.add_argument("--regrade", action="store_true", help="grade everyone again, even those in grades.csv")
    dask = grade.add_argument_group("grading on Dask (book/grading.md)")
    dask.add_argument("--dask", action="store_true",
                      help="grade on a Dask LocalCluster of --workers processes started here (TLS on loopback)")
    dask.add_argument("--scheduler", metavar="ADDRESS", default=None,
                      help="grade on the Dask cluster of this scheduler (tls://HOST:PORT)")
    dask.add_argument("--tls-ca-file", default=None, help="CA certificate of a tls:// scheduler")
    dask.add_argument("--tls-cert", default=None, help="this client's TLS certificate")
    dask.add_argument("--tls-key", default=None, help="this client's TLS private key")
    dask.add_argument("--insecure-scheduler", action="store_true",
                      help="allow a scheduler address without TLS (tcp://): only on a network no one else reaches")
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


def executor_for(args: argparse.Namespace):
    """None (the local grader), or a ``cluster.DaskExecutor`` for --dask / --scheduler."""
    if args.dask and args.scheduler:
        raise ValueError("pass --dask (a cluster started here) or --scheduler ADDRESS (a running one), not both")
    if args.scheduler:
        from .cluster import DaskExecutor, check_address, tls_security

        check_address(args.scheduler, args.insecure_scheduler)
        security = (tls_security(args.tls_ca_file, args.tls_cert, args.tls_key)
                    if args.scheduler.startswith(("tls://", "wss://")) else None)
        return DaskExecutor.connect(args.scheduler, args.insecure_scheduler, security)
    if args.dask:
        from .cluster import DaskExecutor

        return DaskExecutor.local(args.workers)
    return None


def cmd_grade(args: argparse.Namespace) -> int:
    from .batch import grade
    from .sandbox import Limits

    limits = Limits(cell_timeout=args.cell_timeout, timeout=args.timeout, memory_mb=args.memory_mb,
                    total_memory_mb=args.total_memory_mb, max_output_mb=args.max_output_mb, disk_mb=args.disk_mb,
                    processes=args.processes, wall_factor=args.wall_factor)
    executor = executor_for(args)
    try:
        rows = grade(args.assignment, args.course_dir, workers=args.workers, limits=limits,
                     data_home=args.data_home, regrade=args.regrade, executor=executor)
    finally:
        if executor is not None:
            executor.close()
    graded = sum(r["status"] == "graded" for r in rows)
    print(f"{len(rows)} notebooks recorded ({graded} graded, {len(rows) - graded} with a failure); "
          f"see {args.course_dir}/grades.csv", file=sys.stderr)
    return 0


def cmd_feedback(args: argparse.Namespace) -> int:
    from .course import feedback

    pages = feedback(args.assignment, args.course_dir)
    print(f"{len(pages)} feedback pages in {args.course_dir}/feedback/")
    return 0
