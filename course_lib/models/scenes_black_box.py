"""The black box that the real-time saliency chapter explains: a SmallResNet of the scenes' 12 classes.

It trains on the 'all' scenes of chapter 10 and, half of the time, on crops
around their objects resized to the full image (``train/batches/object_crops.py``),
so that the saliency metric's resized crops are images it knows. Its own file,
so that changing the masking model's recipes never retrains it.
"""
from __future__ import annotations

from ..data.scenes import CLASSES, scenes_splits
from ..train.batches import ObjectCrops
from ..train.callbacks import OneCycle
from ..train.recipes import Plan, Recipe, register
from .fusion import SmallResNet

SCENES = dict(width=16, size=64, class_set="all", context=0.9, n_train=3000, n_val=200, n_test=400)
# full: the scenes at 224 px (the ImageNet encoders' scale), more of them (8000 images of 224 px are
# 4.8 GB as floats); not yet run (no GPU lent).
SCENES_FULL = dict(width=32, size=224, class_set="all", context=0.9, n_train=8000, n_val=1000, n_test=2000)


def _black_box_plan(settings: dict, splits, home) -> Plan:
    return Plan(batches=ObjectCrops(settings["crop_rate"]), callbacks=[OneCycle(settings["lr"])])


register(Recipe(
    name="scenes_black_box", summary="SmallResNet on the 'all' scenes with object crops (the saliency black box)",
    build=lambda settings: SmallResNet(len(CLASSES), settings["width"]), data=scenes_splits,
    quick=dict(SCENES, epochs=8, batch_size=64, optimizer="Adam", lr=4e-3, crop_rate=0.5),
    full=dict(SCENES_FULL, epochs=15, batch_size=64, optimizer="Adam", lr=2e-3, crop_rate=0.5),
    plan=_black_box_plan))
