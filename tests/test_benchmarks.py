"""Every benchmark script still runs end to end (tiny settings) and writes its table as JSON.

No timing is asserted: the numbers only have to be positive and finite.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from .conftest import REPO

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
    "notebooks": ["notebooks.py", "01", "--jobs", "1", "--cold"],
}


def _run(name: str, folder) -> subprocess.CompletedProcess:
    script, *args = RUNS[name]
    # One thread each: the scripts run three at a time, and their timings are not checked here.
    env = dict(os.environ, COURSE_BENCHMARK_RESULTS=str(folder), COURSE_PROGRESS="0", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def benchmark_runs(tmp_path_factory):
    """Every script's run, three at a time (they are mostly imports and start-up): ``{name: (future, folder)}``."""
    folders = {name: tmp_path_factory.mktemp(name) for name in RUNS}
    with ThreadPoolExecutor(3) as pool:
        return {name: (pool.submit(_run, name, folder), folder) for name, folder in folders.items()}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(RUNS))
def test_benchmark_runs_and_writes_json(name, benchmark_runs):
    future, folder = benchmark_runs[name]
    result = future.result()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    record = json.loads((folder / f"{name}.json").read_text())
    assert record["machine"]["torch"] and record["rows"]
    numbers = {(k, v) for row in record["rows"] for k, v in row.items() if isinstance(v, (int, float))}
    assert numbers and all(math.isfinite(v) for _, v in numbers)
    # times, rates and counts are never negative (a log-ratio such as the saliency metric may be)
    assert all(v >= 0 for k, v in numbers if "metric" not in k)
    header = list(record["rows"][0])[0]
    assert header in result.stdout  # the table was printed
