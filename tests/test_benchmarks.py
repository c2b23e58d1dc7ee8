"""Every benchmark script still runs end to end (tiny settings) and writes its table as JSON.

No timing is asserted: the numbers only have to be positive and finite. The scripts
run in the background from the session's first test (``benchmark_runs``, conftest).
"""
from __future__ import annotations

import json
import math

import pytest

from .benchmark_runs import RUNS


@pytest.mark.slow
@pytest.mark.parametrize("name", list(RUNS))
def test_benchmark_runs_and_writes_json(name, benchmark_runs):
    result, folder = benchmark_runs.futures[name].result(), benchmark_runs.folders[name]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    record = json.loads((folder / f"{name}.json").read_text())
    assert record["machine"]["torch"] and record["rows"]
    numbers = {(k, v) for row in record["rows"] for k, v in row.items() if isinstance(v, (int, float))}
    assert numbers and all(math.isfinite(v) for _, v in numbers)
    # times, rates and counts are never negative (a log-ratio such as the saliency metric may be)
    assert all(v >= 0 for k, v in numbers if "metric" not in k)
    header = list(record["rows"][0])[0]
    assert header in result.stdout  # the table was printed
