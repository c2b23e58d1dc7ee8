"""Measuring saliency maps with boxes: localisation error and Dabkowski and Gal's saliency metric.

Boxes everywhere in the kit are ``(x0, y0, x1, y1)`` in pixels with ``x1``, ``y1``
exclusive, so a box's area is ``(x1 - x0) * (y1 - y0)`` pixels: the convention of
``data/scenes.py``. torchvision's box operations read boxes as continuous
intervals ``[x0, x1)``, which is the same arithmetic, so they are used as they are.

* ``box_from_map``: the tightest box around the pixels of a map at or above a threshold;
* ``box_iou``: intersection over union;
* ``localisation_error``: the share of images whose map's box misses every
  ground-truth box (IoU at most 0.5), the weakly supervised localisation protocol
  that Dabkowski and Gal adopt from Cao et al.;
* ``saliency_metric``: ``log(max(a, 0.05)) - log(p)``, with ``a`` the box's area as
  a fraction of the image and ``p`` the classifier's probability of the class on
  the box's crop resized to the input size (lower is better: a small box that
  still convinces the classifier);
* ``max_box`` and ``centre_box``: the baselines of their Table 3 (the whole image,
  and a centred box of half the image's area).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.ops import box_iou as _pairwise_iou
from torchvision.ops import masks_to_boxes

from ..model_state import frozen_eval

AREA_FLOOR = 0.05  # Dabkowski and Gal threshold the area at 5% to keep tiny crops from dominating


def _as_boxes(boxes, name: str) -> torch.Tensor:
    boxes = torch.as_tensor(boxes)
    if boxes.shape[-1:] != (4,) or boxes.ndim > 2:
        raise ValueError(f"{name} must be one box (4,) or boxes (N, 4) as (x0, y0, x1, y1); "
                         f"got shape {tuple(boxes.shape)}")
    return boxes.reshape(-1, 4).float()


def box_iou(a, b) -> torch.Tensor:
    """Intersection over union of boxes ``(x0, y0, x1, y1)`` (pixels, ends exclusive).

    ``a``, ``b``: one box (4,) each -> a 0-d tensor; (N, 4) and (M, 4) -> (N, M)
    (torchvision's ``box_iou``). A box of zero area has IoU 0 with everything.
    """
    single = torch.as_tensor(a).ndim == 1 and torch.as_tensor(b).ndim == 1
    iou = _pairwise_iou(_as_boxes(a, "a"), _as_boxes(b, "b")).nan_to_num(0.0)
    return iou[0, 0] if single else iou


def check_box(box, height: int, width: int) -> None:
    """Raise ValueError unless ``box`` (4,) lies inside a ``height`` x ``width`` image with x0 < x1, y0 < y1."""
    x0, y0, x1, y1 = (int(v) for v in box)
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise ValueError(f"box ({x0}, {y0}, {x1}, {y1}) is not a non-empty box inside the {height}x{width} "
                         "image; boxes are (x0, y0, x1, y1) in pixels with x1, y1 exclusive")


def box_from_map(saliency: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """The tightest box (4,) int64 around the pixels of an (H, W) map at or above ``threshold``.

    ``threshold`` in [0, 1]: the maps are masks in [0, 1] (for other maps,
    normalise them first, e.g. ``normalise_map``). No pixel at or above it gives
    the empty box (0, 0, 0, 0), which localises nothing.
    """
    if saliency.ndim != 2:
        raise ValueError(f"box_from_map takes one (H, W) map, got shape {tuple(saliency.shape)}; "
                         "loop over a batch of maps")
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold={threshold} must lie in [0, 1] (maps are masks in [0, 1])")
    hit = saliency >= threshold
    if not hit.any():
        return torch.zeros(4, dtype=torch.int64)
    box = masks_to_boxes(hit[None])[0].long()  # torchvision's ends are the last pixel: make them exclusive
    return box + torch.tensor([0, 0, 1, 1])


def normalise_map(saliency: torch.Tensor) -> torch.Tensor:
    """An (..., H, W) map rescaled to [0, 1] per map (divided by its maximum; an all-zero map stays zero).

    The kit's thresholding rule for maps that are not masks (gradients, Grad-CAM):
    a threshold is a fraction of each map's own maximum (Dabkowski and Gal do not
    say how they thresholded such maps).
    """
    peak = saliency.flatten(-2).amax(-1)[..., None, None]
    return torch.where(peak > 0, saliency / peak.clamp_min(1e-12), torch.zeros_like(saliency))


def localisation_error(maps: torch.Tensor, boxes, threshold: float = 0.5) -> float:
    """% of images whose map's box (``box_from_map``) has IoU at most 0.5 with every ground-truth box.

    ``maps``: (B, H, W) in [0, 1]; ``boxes``: a list of B (k, 4) tensors or a
    (B, K, 4) tensor, zero rows being padding.
    """
    if maps.ndim != 3:
        raise ValueError(f"maps must be (B, H, W), got shape {tuple(maps.shape)}")
    if len(boxes) != len(maps):
        raise ValueError(f"{len(maps)} maps but {len(boxes)} sets of ground-truth boxes")
    missed = 0
    for saliency, truth in zip(maps, boxes):
        truth = _as_boxes(truth, "boxes").to(saliency.device)
        truth = truth[(truth[:, 2] > truth[:, 0]) & (truth[:, 3] > truth[:, 1])]  # drop the padding
        found = box_from_map(saliency, threshold).to(saliency.device)
        missed += int(not (box_iou(found[None], truth) > 0.5).any())
    return 100.0 * missed / len(maps)


def max_box(height: int, width: int) -> torch.Tensor:
    """The whole image as a box: (0, 0, width, height)."""
    return torch.tensor([0, 0, width, height])


def centre_box(height: int, width: int) -> torch.Tensor:
    """The centred box with the image's aspect ratio and half its area (sides / sqrt(2), rounded)."""
    h, w = round(height / math.sqrt(2)), round(width / math.sqrt(2))
    y0, x0 = (height - h) // 2, (width - w) // 2
    return torch.tensor([x0, y0, x0 + w, y0 + h])


def saliency_metric(model: nn.Module, x: torch.Tensor, boxes, y) -> torch.Tensor:
    """Dabkowski and Gal's saliency metric of one box per image: (B,) values, lower is better.

    ``x``: (B, C, H, W) pixels as the model takes them; ``boxes``: (B, 4) or a
    list of B boxes, each inside its image; ``y``: (B,) class indices. Each box's
    crop is resized to (H, W) bilinearly, ignoring the aspect ratio (as the paper
    does), and ``p`` is the model's softmax probability of ``y`` on it (eval mode,
    no gradients; the model is left as it was found). ``a`` is the box's area as a
    fraction of the image. Returns ``log(max(a, 0.05)) - log(p)``.
    """
    if x.ndim != 4:
        raise ValueError(f"x must be (B, C, H, W), got shape {tuple(x.shape)}")
    boxes = torch.stack([torch.as_tensor(b) for b in boxes]) if isinstance(boxes, (list, tuple)) else boxes
    boxes = torch.as_tensor(boxes)
    if boxes.shape != (len(x), 4):
        raise ValueError(f"give one box per image: boxes must be ({len(x)}, 4), got {tuple(boxes.shape)}")
    y = torch.as_tensor(y, device=x.device)
    height, width = x.shape[-2:]
    crops, areas = [], []
    for image, box in zip(x, boxes.tolist()):
        check_box(box, height, width)
        x0, y0, x1, y1 = box
        crop = image[:, y0:y1, x0:x1][None]
        crops.append(F.interpolate(crop, size=(height, width), mode="bilinear", align_corners=False))
        areas.append((x1 - x0) * (y1 - y0) / (height * width))
    with frozen_eval(model), torch.no_grad():
        logits = model(torch.cat(crops))
    if len(y) != len(x) or int(y.min()) < 0 or int(y.max()) >= logits.shape[1]:
        raise ValueError(f"class indices must lie in [0, {logits.shape[1] - 1}], got {y.tolist()}")
    log_p = torch.log_softmax(logits.float(), 1).gather(1, y[:, None].long())[:, 0]
    area = torch.tensor(areas, device=x.device).clamp_min(AREA_FLOOR)
    return torch.log(area) - log_p
