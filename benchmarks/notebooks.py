"""How long the course's notebooks take to execute, one at a time against side by side.

For each value of ``--jobs`` it executes the chosen notebooks (quick profile) with
``course_lib.runner.run_notebooks`` and records the wall time of the whole run, the
sum of the notebooks' own times, and the slowest notebook. ``--cold`` gives each
run a fresh data home, so the run trains every zoo model it needs (what a fresh
clone's ``make test`` does); otherwise one untimed run first builds the zoo and
the timed runs only load it (what a student re-running the book sees).

Writes benchmarks/results/notebooks.json.

Usage: .venv/bin/python benchmarks/notebooks.py [01 05 ...] [--jobs 1 2] [--cold]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402

from course_lib.runner import run_notebooks, select_notebooks, usable_cpus  # noqa: E402


def timed_run(paths, jobs: int, home: Path, out: Path) -> dict:
    start = time.perf_counter()
    runs = run_notebooks(paths, out, data_home=home, jobs=jobs)
    wall = time.perf_counter() - start
    failed = [r.name for r in runs if not r.ok]
    if failed:
        raise SystemExit(f"notebook(s) failed: {', '.join(failed)}; see {out}")
    slowest = max(runs, key=lambda r: r.seconds)
    return {"jobs": jobs, "threads_per_kernel": max(1, usable_cpus() // jobs) if jobs > 1 else "torch default",
            "notebooks": len(runs), "wall_s": round(wall, 1),
            "sum_of_notebooks_s": round(sum(r.seconds for r in runs), 1),
            "slowest": slowest.name, "slowest_s": slowest.seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook name prefixes (default: all)")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="notebooks at once, one run each")
    parser.add_argument("--cold", action="store_true", help="a fresh data home (empty zoo) for each run")
    args = parser.parse_args()
    paths = select_notebooks(args.names)
    with tempfile.TemporaryDirectory(prefix="notebook-bench-") as scratch:
        scratch = Path(scratch)
        if not args.cold:
            run_notebooks(paths, scratch / "warm-up", data_home=scratch / "home", jobs=max(args.jobs))
        rows = []
        for jobs in args.jobs:
            home = scratch / (f"home-{jobs}" if args.cold else "home")
            rows.append(timed_run(paths, jobs, home, scratch / f"out-{jobs}"))
            rows[-1]["zoo"] = "cold" if args.cold else "warm"
    report("notebooks", rows, [f"{len(paths)} notebook(s) on {usable_cpus()} core(s): "
                               + ", ".join(p.stem for p in paths)])


if __name__ == "__main__":
    main()
