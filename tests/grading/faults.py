"""A Dask task for the tests: grades as the kit does, except that one student's job kills its worker.

A submission in the kit's sandbox cannot reach its worker (another uid, a
PID namespace), so the tests play the part of what can (a driver bug, the
kernel's OOM killer, a node lost): the worker dies by a segmentation fault
each time it takes that job.
"""
from __future__ import annotations

import ctypes

from course_lib.grading.job import Job, grade_on_dask_worker

KILLS_WORKER = "kills_worker"


def grade_or_kill_worker(job: Job) -> dict:
    if job.student == KILLS_WORKER:
        ctypes.string_at(0)  # SIGSEGV: the worker process dies here
    return grade_on_dask_worker(job)


def hangs_once(job: Job) -> dict:
    """Hangs (a worker thread nothing can stop) the first time, where ``$COURSE_TEST_HANG_MARKER`` is absent."""
    import os
    import time
    from pathlib import Path

    from distributed import get_worker

    marker = Path(os.environ["COURSE_TEST_HANG_MARKER"])
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        time.sleep(3600)
    return {"status": "graded", "worker": get_worker().address, "pid": os.getpid()}
