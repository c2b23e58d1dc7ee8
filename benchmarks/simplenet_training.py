"""SimpleNet training throughput on 256x256 inputs: plain vs fused optimizers, and channels_last.

Prints images/s (median of timed steps after warm-up) for each batch size and
optimizer implementation, then with the fused optimizer in the channels_last
memory layout that the Trainer uses, and writes benchmarks/results/simplenet_training.json.

Usage: .venv/bin/python benchmarks/simplenet_training.py [--device cpu] [--steps 15]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report, training_images_per_second  # noqa: E402

from course_lib.config import get_device  # noqa: E402
from course_lib.models import SimpleNet  # noqa: E402


def images_per_second(device, batch: int, optimizer: str, fused: bool, steps: int,
                      channels_last: bool = False) -> float:
    torch.manual_seed(0)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = SimpleNet().to(device, memory_format=layout)
    cls = torch.optim.Adam if optimizer == "Adam" else torch.optim.SGD
    kwargs = {"momentum": 0.9} if optimizer == "SGD" else {}
    opt = cls(model.parameters(), lr=1e-4, fused=fused, **kwargs)
    x = torch.randn(batch, 3, 256, 256, device=device).contiguous(memory_format=layout)
    y = torch.randint(0, 2, (batch,), device=device)
    return training_images_per_second(model, opt, x, y, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 32])
    args = parser.parse_args()
    device = get_device(args.device)
    rows = []
    for batch in args.batches:
        for optimizer in ("Adam", "SGD"):
            plain = images_per_second(device, batch, optimizer, False, args.steps)
            fused = images_per_second(device, batch, optimizer, True, args.steps)
            last = images_per_second(device, batch, optimizer, True, args.steps, channels_last=True)
            rows.append({"device": device.type, "batch": batch, "optimizer": optimizer,
                         "plain_img_s": plain, "fused_img_s": fused,
                         "fused_channels_last_img_s": last, "speedup": last / plain})
    report("simplenet_training", rows)


if __name__ == "__main__":
    main()
