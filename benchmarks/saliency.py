"""Real-time saliency's speed claim: masks per second of the masking model against iterative masks.

On the same test scenes (64 px, the zoo's ``scenes_black_box`` as the black box) it
times four saliency methods in one run: the masking model (``scenes_masking``, one
batched forward pass), iterative masks (``IterativeMask``, 300 Adam steps each,
the images of a batch optimised together), the gradient and Grad-CAM. Each row
gives seconds per image, masks per second, and the saliency metric and
localisation error of its maps on those images (``saliency/scoring.py``), so the
speed-up is read at a known quality. The last line is the iterative method's time
per image over the masking model's. Dabkowski and Gal report over 100 masks a
second (224 px images) on a standard GPU.

``--untrained`` uses fresh, untrained models instead of the zoo's (the smoke
test's setting: times only, its quality columns mean nothing).
Writes benchmarks/results/saliency.json.

Usage: .venv/bin/python benchmarks/saliency.py [--device cpu] [--images 64] [--steps 300]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report, seconds  # noqa: E402

from course_lib.config import get_device  # noqa: E402
from course_lib.data.scenes import CLASSES, ScenesDataset, class_set, load_scenes  # noqa: E402
from course_lib.models.masking import build_masked_black_box
from course_lib.models.scenes_black_box import SCENES  # noqa: E402
from course_lib.saliency import GradCAMSaliency, IterativeMask, gradient_saliency  # noqa: E402
from course_lib.saliency.code_objective import PublishedCodeObjective  # noqa: E402
from course_lib.saliency.scoring import score_maps  # noqa: E402
from course_lib.zoo import build  # noqa: E402


def models(args, device):
    if args.untrained:
        torch.manual_seed(0)
        pair = build_masked_black_box(dict(SCENES, objective="code"))
    else:
        pair = build("scenes_masking", "quick", device=str(device), progress=False).model
    return pair.to(device).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--images", type=int, default=64, help="test scenes measured (one batch)")
    parser.add_argument("--steps", type=int, default=300, help="Adam steps of each iterative mask")
    parser.add_argument("--untrained", action="store_true", help="fresh models: times only (smoke test)")
    args = parser.parse_args()
    device = get_device(args.device)
    pair = models(args, device)
    data = ScenesDataset(load_scenes(args.images, 9, SCENES["context"], class_set("all"), SCENES["size"]))
    items = data.tensors()
    x, y = items["x"].to(device), items["y"].to(device)
    black_box, masking = pair.black_box, pair.saliency()
    methods = {"masking model": (masking, True), "iterative masks": (IterativeMask(
        PublishedCodeObjective(), mask_size=16, steps=args.steps), True),
        "gradient": (gradient_saliency, False), "Grad-CAM (blocks.3)": (GradCAMSaliency("blocks.3"), False)}
    rows, per_image = [], {}
    masking(black_box, x[:2], y[:2])  # warm-up: the first call pays for one-off allocations
    for name, (method, is_mask) in methods.items():
        maps = []
        elapsed = seconds(lambda: maps.append(method(black_box, x, y)), device)
        row = score_maps(name, black_box, x, y, items["boxes"], maps[0], items["mask"], is_mask, elapsed)
        per_image[name] = row["seconds_per_image"]
        rows.append({"method": name, "device": device.type, "images": len(x),
                     "ms_per_image": round(1000 * row["seconds_per_image"], 3),
                     "masks_per_s": round(1 / row["seconds_per_image"], 1),
                     "saliency_metric": round(row["metric"], 3), "loc_error_%": round(row["loc_error"], 1)})
    speedup = per_image["iterative masks"] / per_image["masking model"]
    report("saliency", rows, notes=[f"{len(x)} test scenes of {SCENES['size']} px, {len(CLASSES)} classes; "
                                    f"iterative masks: {args.steps} steps; "
                                    f"iterative / masking model time per image: {speedup:.0f}x"])


if __name__ == "__main__":
    main()
