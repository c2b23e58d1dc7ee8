"""Which encoder for the masking model in quick: the scenes classifier itself or ImageNet EfficientNet-Lite0.

Dabkowski and Gal's masking model reads a frozen pretrained classifier's feature
pyramid (theirs: ImageNet ResNet-50). In ``quick`` the kit has two candidates: a
frozen copy of the black box it explains (``scenes_masking``: the 64 px scenes'
SmallResNet) and the real ImageNet EfficientNet-Lite0 the kit ships
(``scenes_masking_efficientnet``). Both are zoo builds of the same recipe but for
the encoder: the authors' code's objective, the same epochs, data and black box.
For each the table gives the build's training time, its test metrics as the zoo
recorded them (localisation error, mean mask area for the true class and for a
wrong one, the black box's accuracy on the preserved and on the destroyed
image), and, on the benchmark's own test scenes (those of ``benchmarks/saliency.py``),
the saliency metric, localisation error and pixel AUC of its masks and the time
per mask (one batched forward pass).

``--smoke`` trains tiny copies of both (and of the black box) for one epoch on a
few images: the test suite's setting, whose quality columns mean nothing.
Writes benchmarks/results/masking_encoder.json.

Each build is repeated for ``--seeds`` seeds (each seed draws its own scenes and
trains its own black box), and a mean row follows each encoder's.

Usage: .venv/bin/python benchmarks/masking_encoder.py [--device cpu] [--images 64] [--seeds 3] [--smoke]
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import seconds, report  # noqa: E402

from course_lib.config import get_device  # noqa: E402
from course_lib.data.scenes import ScenesDataset, class_set, load_scenes  # noqa: E402
from course_lib.models.scenes_black_box import SCENES  # noqa: E402
from course_lib.saliency.scoring import score_maps  # noqa: E402
from course_lib.train.recipes import RECIPES, register  # noqa: E402
from course_lib.zoo import build, get_recipe  # noqa: E402

VARIANTS = {"scenes classifier (black box's SmallResNet)": "scenes_masking",
            "ImageNet EfficientNet-Lite0": "scenes_masking_efficientnet"}
SMOKE = dict(epochs=1, n_train=64, n_val=32, n_test=32)


def smoke_recipes() -> dict[str, str]:
    """Tiny copies of the two masking recipes and of their black box, registered under smoke_* names."""
    black_box = get_recipe("scenes_black_box")
    if "smoke_black_box" not in RECIPES:
        register(dataclasses.replace(black_box, name="smoke_black_box", quick=dict(black_box.quick, **SMOKE)))
    names = {}
    for label, name in VARIANTS.items():
        recipe, smoke = get_recipe(name), f"smoke_{name}"
        if smoke not in RECIPES:
            parts = recipe.components
            register(dataclasses.replace(
                recipe, name=smoke, quick=dict(recipe.quick, **SMOKE),
                components=lambda settings, parts=parts: {k: "smoke_black_box" for k in parts(settings)}))
        names[label] = smoke
    return names


def measure(label: str, name: str, seed: int, built, x, y, items, device) -> dict:
    """One row: the build's recorded test metrics, and its masks scored on the benchmark's scenes."""
    pair = built.model.to(device).eval()
    masking = pair.saliency()
    masking(pair.black_box, x[:2], y[:2])  # warm-up: one-off allocations
    maps = []
    elapsed = seconds(lambda: maps.append(masking(pair.black_box, x, y)), device)
    scored = score_maps(label, pair.black_box, x, y, items["boxes"], maps[0], items["mask"], True, elapsed)
    m = built.metrics
    trainable = sum(p.numel() for p in pair.masking.parameters() if p.requires_grad)
    return {"encoder": label, "zoo name": name, "seed": str(seed),
            "epochs": built.settings["epochs"], "trainable_params": trainable, "build_s": round(built.seconds, 1),
            "test_loc_error_%": round(m["test_loc_error"], 1), "test_area": round(m["test_area"], 3),
            "test_area_wrong_class": round(m["test_area_fake"], 3),
            "test_preserved_acc_%": round(m["test_preserved_acc"], 1),
            "test_destroyed_acc_%": round(m["test_destroyed_acc"], 1),
            "saliency_metric": round(scored["metric"], 3), "loc_error_%": round(scored["loc_error"], 1),
            "pixel_auc": round(scored["pixel_auc"], 3),
            "ms_per_mask": round(1000 * scored["seconds_per_image"], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--images", type=int, default=64, help="test scenes for the saliency metric (one batch)")
    parser.add_argument("--seeds", type=int, default=3, help="builds per encoder (seeds 0..N-1: data, black box, "
                                                                "masking model); a mean row follows")
    parser.add_argument("--smoke", action="store_true", help="tiny one-epoch builds: runs only (the test suite's)")
    args = parser.parse_args()
    device = get_device(args.device)
    variants = smoke_recipes() if args.smoke else VARIANTS
    data = ScenesDataset(load_scenes(args.images, 9, SCENES["context"], class_set("all"), SCENES["size"]))
    items = data.tensors()
    x, y = items["x"].to(device), items["y"].to(device)
    rows, n_test = [], None
    for label, name in variants.items():
        per_seed = []
        for seed in range(args.seeds):
            built = build(name, "quick", device=str(device), seed=seed, progress=False)
            per_seed.append(measure(label, name, seed, built, x, y, items, device))
            n_test = built.settings["n_test"]
        rows += per_seed
        if len(per_seed) > 1:
            rows.append({key: (round(sum(r[key] for r in per_seed) / len(per_seed), 3)
                               if isinstance(per_seed[0][key], float) else per_seed[0][key])
                         for key in per_seed[0]} | {"seed": "mean"})
    report("masking_encoder", rows, notes=[
        f"quick profile, {SCENES['size']} px scenes; test_* columns: the zoo's test split "
        f"({n_test} scenes); saliency metric, loc error and pixel AUC: "
        f"{len(x)} scenes of benchmarks/saliency.py; lower is better for the metric, errors and areas"])


if __name__ == "__main__":
    main()
