"""A Dask worker preload for the tests: one worker's restart takes longer than Dask's lost-worker timeout.

``$COURSE_TEST_SLOW_RESTART`` names a file; when it holds this worker's
name, the worker deletes it and sleeps ``SECONDS`` before registering with
the scheduler, as a worker started on a loaded machine can (Dask's
``SpecCluster`` closes the nanny of a worker not back within
``distributed.deploy.lost-worker-timeout``, 15 s by default).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

SECONDS = 20.0


def dask_setup(worker) -> None:
    marker = Path(os.environ.get("COURSE_TEST_SLOW_RESTART", "/nonexistent"))
    try:
        name = marker.read_text()
    except FileNotFoundError:
        return
    if name == str(worker.name):
        marker.unlink()
        time.sleep(SECONDS)
        marker.with_suffix(".slept").write_text(name)
