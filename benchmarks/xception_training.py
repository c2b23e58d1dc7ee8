"""XceptionBased fine-tuning throughput: images/s for one Adam step, by input side and batch.

The course fine-tunes at 256x256 with batch 32 (``full``); the ``quick`` profile
trains on small crops because a CPU step at 256x256 is slow. Each setting is
timed in both memory layouts (the Trainer uses channels_last). Median of timed
steps after two warm-up steps; writes benchmarks/results/xception_training.json.

Usage: .venv/bin/python benchmarks/xception_training.py [--device cuda] [--steps 5]
       [--settings 256x32 64x16]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report, training_images_per_second  # noqa: E402

from course_lib.config import get_device  # noqa: E402
from course_lib.models import get_xception_based_model  # noqa: E402
from course_lib.train import make_optimizer  # noqa: E402


def images_per_second(device, side: int, batch: int, steps: int, channels_last: bool) -> float:
    torch.manual_seed(0)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = get_xception_based_model(pretrained=False).to(device, memory_format=layout).train()
    optimizer = make_optimizer("Adam", model.parameters(), lr=1e-3)
    x = torch.randn(batch, 3, side, side, device=device).contiguous(memory_format=layout)
    y = torch.randint(0, 2, (batch,), device=device)
    return training_images_per_second(model, optimizer, x, y, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--settings", nargs="+", default=None,
                        help="SIDExBATCH pairs (default: 256x32 64x16 on a GPU, 256x8 64x16 on a CPU)")
    args = parser.parse_args()
    device = get_device(args.device)
    settings = args.settings or (["256x32", "64x16"] if device.type == "cuda" else ["256x8", "64x16"])
    rows = []
    for setting in settings:
        side, batch = (int(v) for v in setting.split("x"))
        plain = images_per_second(device, side, batch, args.steps, channels_last=False)
        last = images_per_second(device, side, batch, args.steps, channels_last=True)
        rows.append({"device": device.type, "side": side, "batch": batch, "contiguous_img_s": plain,
                     "channels_last_img_s": last, "speedup": last / plain})
    report("xception_training", rows)


if __name__ == "__main__":
    main()
