"""Dabkowski and Gal's Table 3 for any saliency methods: localisation error, saliency metric, pixel agreement.

``saliency_table`` runs each method of a dict on one batch of images and scores
its maps the same way, beside the paper's three baselines (ground-truth
boxes, the whole image, the centre box):

* the map's box: masks in [0, 1] (``IterativeMask``, the masking model) are
  thresholded at 0.5 as they are; other maps (gradient, Grad-CAM) are first
  divided by their own maximum (``localisation.normalise_map``, the kit's
  rule: the paper states none), so 0.5 means half the map's peak. A map with nothing at or above the
  threshold points nowhere: it counts as a localisation miss, and for the
  saliency metric its box is the whole image (nothing was cropped away), the
  max box's score;
* ``loc_error``: % of images whose box has IoU at most 0.5 with every ground-truth box;
* ``metric``: the mean saliency metric of the boxes (lower is better); for the
  ground-truth row, each image's value is the mean over its boxes, as the paper does;
* ``pixel_auc``: beyond the paper, how well the map ranks the object's drawn
  pixels above the background (ROC AUC per image, scikit-learn, averaged;
  0.5 is chance), a threshold-free agreement that treats every map scale alike;
* ``seconds_per_image``: the method's wall time over the batch, per image.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from .localisation import box_from_map, centre_box, localisation_error, max_box, normalise_map, saliency_metric


def metric_boxes(maps: torch.Tensor, threshold: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """(boxes (B, 4), empty (B,) bool) of (B, H, W) maps in [0, 1]; an empty map's box is the whole image."""
    boxes = torch.stack([box_from_map(m, threshold) for m in maps]).cpu()
    empty = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    boxes[empty] = max_box(*maps.shape[-2:])
    return boxes, empty


def pixel_auc(maps: torch.Tensor, object_masks: torch.Tensor) -> np.ndarray:
    """ROC AUC of each map's values against its image's object pixels: (B, H, W), (B, H, W) bool -> (B,)."""
    if maps.shape != object_masks.shape:
        raise ValueError(f"maps {tuple(maps.shape)} and object masks {tuple(object_masks.shape)} must have one shape")
    scores = maps.detach().float().cpu().flatten(1).numpy()
    truth = object_masks.cpu().flatten(1).numpy().astype(bool)
    return np.array([roc_auc_score(t, s) if 0 < t.sum() < t.size else np.nan for s, t in zip(scores, truth)])


def ground_truth_metric(model: nn.Module, x: torch.Tensor, boxes: torch.Tensor, y) -> torch.Tensor:
    """The saliency metric of the ground-truth boxes, (B,): each image's mean over its (non-padding) boxes."""
    values = torch.zeros(len(x))
    for k in range(boxes.shape[1]):
        present = (boxes[:, k, 2] > boxes[:, k, 0]) & (boxes[:, k, 3] > boxes[:, k, 1])
        if present.any():
            values[present] += saliency_metric(model, x[present], boxes[present, k], torch.as_tensor(y)[present]).cpu()
    counts = ((boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])).sum(1).clamp_min(1)
    return values / counts


def _fixed_row(name: str, model, x, y, boxes, box: torch.Tensor) -> dict:
    h, w = x.shape[-2:]
    maps = torch.zeros(len(x), h, w)
    x0, y0, x1, y1 = box.tolist()
    maps[:, y0:y1, x0:x1] = 1
    return {"method": name, "loc_error": localisation_error(maps, boxes),
            "metric": saliency_metric(model, x, box.expand(len(x), 4), y).mean().item(),
            "pixel_auc": float("nan"), "seconds_per_image": 0.0, "empty": 0}


def score_maps(name: str, model: nn.Module, x: torch.Tensor, y, boxes: torch.Tensor, maps: torch.Tensor,
               object_masks: torch.Tensor, is_mask: bool, seconds: float = float("nan")) -> dict:
    """One row of the table for ``maps`` (B, H, W) of ``model`` on ``x`` (see the module for each value)."""
    maps = maps.detach().float().cpu()
    scaled = maps if is_mask else normalise_map(maps)
    found, empty = metric_boxes(scaled)
    return {"method": name, "loc_error": localisation_error(scaled, boxes),
            "metric": saliency_metric(model, x, found.to(x.device), y).mean().item(),
            "pixel_auc": float(np.nanmean(pixel_auc(maps, object_masks))),
            "seconds_per_image": seconds / len(x), "empty": int(empty.sum())}


def saliency_table(model: nn.Module, x: torch.Tensor, y, boxes: torch.Tensor, object_masks: torch.Tensor,
                   methods: dict, masks: frozenset | set = frozenset(),
                   batch_size: int = 250) -> tuple[list[dict], dict]:
    """Table 3 rows for ``methods`` ({name: saliency method}) and the three baselines, and each method's maps.

    ``x`` (B, C, H, W) pixels, ``y`` (B,) classes, ``boxes`` (B, K, 4) ground
    truth with zero rows as padding, ``object_masks`` (B, H, W) bool; ``masks``
    names the methods whose maps are masks in [0, 1] (thresholded as they are).
    Each method sees at most ``batch_size`` images at a time (a gradient through
    a 224 px network holds tens of MB per image); its time covers all of them.
    """
    h, w = x.shape[-2:]
    rows = [{"method": "ground-truth boxes", "loc_error": 0.0,
             "metric": ground_truth_metric(model, x, boxes, y).mean().item(), "pixel_auc": float("nan"),
             "seconds_per_image": 0.0, "empty": 0},
            _fixed_row("max box", model, x, y, boxes, max_box(h, w)),
            _fixed_row("centre box", model, x, y, boxes, centre_box(h, w))]
    maps = {}
    for name, method in methods.items():
        start = time.perf_counter()
        labels = torch.as_tensor(y, device=x.device)
        maps[name] = torch.cat([torch.as_tensor(method(model, xb, yb)).detach().cpu()
                                for xb, yb in zip(x.split(batch_size), labels.split(batch_size))])
        seconds = time.perf_counter() - start
        rows.append(score_maps(name, model, x, y, boxes, maps[name], object_masks, name in masks, seconds))
    return rows, maps
