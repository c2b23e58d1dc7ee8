"""How long the offline stand-in face datasets take to draw (target: quick size < 20 s).

Usage: .venv/bin/python benchmarks/faces_generation.py [--workers 1 2]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402

from course_lib.config import get_profile  # noqa: E402
from course_lib.data import generate_faces_dataset  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    sizes = get_profile("quick").faces_sizes
    rows = []
    for workers in args.workers:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            root = generate_faces_dataset(tmp, sizes, seed=0, progress=False, workers=workers)
            seconds = time.perf_counter() - start
            images = len(list(Path(root).rglob("*.png")))
        rows.append({"profile": "quick", "workers": workers, "images": images, "seconds": seconds,
                     "images_per_s": images / seconds})
    report("faces_generation", rows)


if __name__ == "__main__":
    main()
