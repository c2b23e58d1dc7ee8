"""How long the offline stand-in face datasets take to draw (target: quick size < 20 s).

Usage: .venv/bin/python benchmarks/faces_generation.py [--workers 1 2] [--scale 1.0]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402

from dataclasses import replace  # noqa: E402

from course_lib.config import get_profile  # noqa: E402
from course_lib.data import generate_faces_dataset  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="share of the quick profile's images to draw (the test suite's smoke run: 0.1)")
    args = parser.parse_args()
    if not 0 < args.scale <= 1:
        parser.error(f"--scale must be in (0, 1], got {args.scale}")
    quick = get_profile("quick").faces_sizes
    sizes = replace(quick, **{split: max(3, round(getattr(quick, split) * args.scale))
                              for split in ("train", "val", "test")})
    profile = "quick" if args.scale == 1 else f"quick x{args.scale:g}"
    rows = []
    for workers in args.workers:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            root = generate_faces_dataset(tmp, sizes, seed=0, progress=False, workers=workers)
            seconds = time.perf_counter() - start
            images = len(list(Path(root).rglob("*.png")))
        rows.append({"profile": profile, "workers": workers, "images": images, "seconds": seconds,
                     "images_per_s": images / seconds})
    report("faces_generation", rows)


if __name__ == "__main__":
    main()
