"""Helpers for benchmark scripts: a printed table and a JSON record."""
from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

# COURSE_BENCHMARK_RESULTS moves the JSON elsewhere (the smoke tests write to a temporary folder).
RESULTS = Path(os.environ.get("COURSE_BENCHMARK_RESULTS") or Path(__file__).resolve().parent / "results")


def machine() -> dict:
    """What the numbers were measured on."""
    return {"python": platform.python_version(), "torch": torch.__version__,
            "cpu_threads": torch.get_num_threads(), "processor": platform.processor() or platform.machine(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def seconds(fn: Callable[[], object], device: torch.device) -> float:
    """Wall time of one call of ``fn``, waiting for the GPU to finish when there is one."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def median_seconds(fn: Callable[[], object], device: torch.device, runs: int, warmup: int = 2) -> float:
    """Median wall time of ``runs`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    return statistics.median(seconds(fn, device) for _ in range(runs))


def training_images_per_second(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                               y: torch.Tensor, steps: int) -> float:
    """Images/s of one cross-entropy training step on the batch (x, y): median of ``steps`` timed steps."""

    def step():
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    return len(x) / median_seconds(step, x.device, steps)


def report(name: str, rows: list[dict], notes: list[str] = ()) -> Path:
    """Print ``rows`` as a table and write them, with the machine (and ``notes``), to results/NAME.json."""
    for note in notes:
        print(note)
    columns = list(rows[0])
    widths = [max(len(c), *(len(_fmt(r[c])) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for row in rows:
        print("  ".join(_fmt(row[c]).ljust(w) for c, w in zip(columns, widths)))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    record = {"machine": machine(), "written": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "command": " ".join(["python", *sys.argv]), "rows": rows}
    if notes:
        record["notes"] = list(notes)
    path.write_text(json.dumps(record, indent=2))
    print(f"\nwritten to {path}")
    return path


def _fmt(value) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)
