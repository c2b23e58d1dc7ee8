"""Crops around an object, resized to the full image: teaches a classifier the scale it is probed at.

Dabkowski and Gal's saliency metric crops the box a saliency map points at and
resizes it to the classifier's input, so a classifier that has only seen
objects at their drawn size is probed far outside its data (a small object
blown up to the whole image). ``ObjectCrops`` trains on such crops: each
image, with probability ``p``, is replaced by a random box that contains one
of its objects (each side drawn uniformly between the object's edge and the
image's), resized bilinearly to the image size, ignoring the aspect ratio as
the metric does. torchvision's ``RandomResizedCrop`` draws boxes by area and
aspect and may cut the object away, which would train on wrong labels; hence
this small maker. The data must carry ``boxes`` (B, K, 4), zero rows padding.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

from ..batch import Batch
from .base import BatchMaker


def crop_around(image: torch.Tensor, box: list[int], generator: torch.Generator | None = None) -> torch.Tensor:
    """A random box of ``image`` (C, H, W) that contains ``box`` (x0, y0, x1, y1), resized to (H, W)."""
    _, h, w = image.shape
    x0, y0, x1, y1 = box
    u = torch.rand(4, generator=generator).tolist()
    left, top = int(u[0] * (x0 + 1)), int(u[1] * (y0 + 1))
    right, bottom = x1 + int(u[2] * (w - x1 + 1)), y1 + int(u[3] * (h - y1 + 1))
    crop = image[:, top:min(bottom, h), left:min(right, w)][None]
    return F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False)[0]


class ObjectCrops(BatchMaker):
    """Each image, with probability ``p``, becomes a resized crop around one of its objects (see the module)."""

    def __init__(self, p: float = 0.5):
        if not 0 <= p <= 1:
            raise ValueError(f"p must lie in [0, 1], got {p}")
        self.p = p

    def __call__(self, engine, loaded) -> Batch:
        batch = Batch.from_loaded(loaded)
        if "boxes" not in batch.extras:
            raise ValueError("ObjectCrops needs each item's object boxes under 'boxes' (the scenes datasets "
                             "give them); this data has only " + ", ".join(["x", "y", *batch.extras]))
        x = batch.x.clone()
        for i in (torch.rand(len(x)) < self.p).nonzero()[:, 0].tolist():
            boxes = batch.extras["boxes"][i]
            boxes = boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]
            box = boxes[torch.randint(len(boxes), ()).item()].tolist()
            x[i] = crop_around(batch.x[i], box)
        return Batch(x=x, y=batch.y, extras=batch.extras)

    def __repr__(self) -> str:
        return f"ObjectCrops(p={self.p})"
