"""The benchmark scripts' smoke runs (tiny settings), started in the background with the session's first test.

They are mostly imports, start-up and waits on their own subprocesses. Run in the
foreground, three at a time, they held every later test up for about two minutes
(122 s in a CI run); started with the session, they run beside the other tests and
the book run, and ``test_benchmarks`` (ordered after the other tests, see conftest)
only reads what they wrote.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TIMEOUT_S = 600  # per script: they share two cores with the book run and the other tests

RUNS = {  # the longest first, so that it does not start last
    "grading": ["grading.py", "--submissions", "1", "--workers", "1", "--dask-workers", "1"],
    "attacks_mnist_cpu": ["attacks.py", "--device", "cpu", "--batch", "8", "--steps", "2", "--runs", "1"],
    "attacks_resnet18_cpu": ["attacks.py", "--device", "cpu", "--model", "resnet18", "--batch", "2",
                             "--steps", "1", "--runs", "1"],
    "adversarial_training": ["adversarial_training.py", "--device", "cpu", "--epochs", "1", "--train-size", "128"],
    "simplenet_training": ["simplenet_training.py", "--device", "cpu", "--steps", "1", "--batches", "2"],
    "xception_training": ["xception_training.py", "--device", "cpu", "--steps", "1", "--settings", "64x2"],
    "faces_generation": ["faces_generation.py", "--workers", "1", "--scale", "0.1"],
    "fusion_streams": ["fusion_streams.py", "--device", "cpu", "--train-size", "48", "--test-size", "24",
                       "--stream-epochs", "1"],
    "saliency": ["saliency.py", "--device", "cpu", "--images", "4", "--steps", "2", "--untrained"],
    "masking_encoder": ["masking_encoder.py", "--device", "cpu", "--images", "8", "--seeds", "2", "--smoke"],
    "notebooks": ["notebooks.py", "01", "--jobs", "1", "--cold"],
}


class BackgroundRuns:
    """The scripts of ``RUNS`` named in ``folders``, three at a time, each writing its JSON into its folder."""

    def __init__(self, folders: dict[str, Path]):
        self.folders = folders
        self._running: list[subprocess.Popen] = []
        self._closed = False
        self._pool = ThreadPoolExecutor(3, thread_name_prefix="benchmark")
        self.futures: dict[str, Future] = {name: self._pool.submit(self._run, name) for name in RUNS if name in folders}

    def _run(self, name: str) -> subprocess.CompletedProcess:
        script, *args = RUNS[name]
        # One thread each: the scripts run three at a time, and their timings are not checked here.
        # Started before the tests' own environment (conftest's _isolated_environment): never the user's data.
        env = dict(os.environ, COURSE_BENCHMARK_RESULTS=str(self.folders[name]), COURSE_PROGRESS="0",
                   OMP_NUM_THREADS="1", COURSE_DATA_HOME=str(self.folders[name] / "data_home"))
        command = [sys.executable, str(REPO / "benchmarks" / script), *args]
        with subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True) as process:
            self._running.append(process)
            if self._closed:  # started while close() was killing the others
                os.killpg(process.pid, signal.SIGKILL)
            try:
                stdout, stderr = process.communicate(timeout=TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                stdout, stderr = process.communicate()
                stderr += f"\n(killed after {TIMEOUT_S} s)"
            return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)

    def close(self) -> None:
        """Cancel the scripts not started and kill those still running (an interrupted session)."""
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        for process in list(self._running):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):  # it ended since the poll
                    os.killpg(process.pid, signal.SIGKILL)
        self._pool.shutdown(wait=True)
