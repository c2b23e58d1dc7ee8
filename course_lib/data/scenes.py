"""Objects in context: the offline stand-in for the contextual-fusion chapter's MS COCO subset.

Akumalla, Haney and Bazhenov ("Contextual Fusion For Adversarial Robustness")
keep the COCO images with at most two instances of one class, each box at most
half the image, and use COCO's super-categories to build "Similar" (one
super-category) and "Dissimilar" (different super-categories) test sets. The
images drawn here have that structure, made so that each part can be measured:

* 8 scene types (procedural backgrounds) and 12 object classes in 4
  super-categories of 3. Each super-category owns 2 scene types, so the scene
  tells the super-category, and says little about the class within it;
* ``context`` is how often a class appears in its own scenes (1: always; 0: the
  scene is independent of the class, like CIFAR-10's weak backgrounds);
* one or two instances of one class, with exact boxes and pixel masks. Colours
  overlap between classes, so shape and texture decide the class, and a strong
  blur of the boxes (``blur_boxes``) removes most of the object evidence.

This is the quick profile's source for every profile; the full profile's MS
COCO source lives in ``data/coco.py``. Draws are cached under ``DATA_HOME/scenes``.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
import operator

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

GENERATOR_VERSION = 1  # bump whenever a change to this file changes the images drawn (it keys the cache)

SCENE_TYPES = ("grass", "forest", "road", "sand", "sky", "water", "snow", "indoor")

# class: (super-category, silhouette, texture, palette hues, P(first of its super-category's two scenes)).
# Silhouette and texture each single out the class; each hue is shared by 6 classes and each class has 3,
# so colour alone (what survives a strong blur) narrows 12 classes to about 6.
_CLASS_TABLE = {
    "sheep": ("animal", "ellipse", "dots", (0, 1, 3), 0.75),
    "horse": ("animal", "crescent", "stripes", (1, 2, 4), 0.5),
    "bear": ("animal", "dumbbell", "solid", (2, 3, 5), 0.25),
    "car": ("vehicle", "square", "checker", (0, 3, 4), 0.75),
    "truck": ("vehicle", "tee", "fine_stripes", (1, 4, 5), 0.5),
    "motorcycle": ("vehicle", "ring", "halves", (0, 2, 5), 0.25),
    "airplane": ("air_and_water", "cross", "rim", (0, 1, 3), 0.75),
    "kite": ("air_and_water", "triangle", "sectors", (1, 2, 4), 0.5),
    "boat": ("air_and_water", "half_disk", "zigzag", (2, 3, 5), 0.25),
    "skis": ("sports", "hourglass", "spots", (0, 3, 4), 0.75),
    "ball": ("sports", "star", "bands", (1, 4, 5), 0.5),
    "racket": ("sports", "arrow", "grid", (0, 2, 5), 0.25),
}
CLASSES = tuple(_CLASS_TABLE)
SUPERCATEGORIES = {sup: tuple(c for c, row in _CLASS_TABLE.items() if row[0] == sup)
                   for sup in dict.fromkeys(row[0] for row in _CLASS_TABLE.values())}
# The two scene types each super-category owns, in SCENE_TYPES order: animal -> grass, forest, ...
_OWN_SCENES = {sup: (2 * i, 2 * i + 1) for i, sup in enumerate(SUPERCATEGORIES)}
SETS = ("all", "similar", "dissimilar")

_PALETTE = torch.tensor([[0.85, 0.15, 0.12],   # red
                         [0.95, 0.55, 0.10],   # orange
                         [0.95, 0.85, 0.20],   # yellow
                         [0.75, 0.25, 0.75],   # magenta
                         [0.15, 0.75, 0.85],   # cyan
                         [0.92, 0.92, 0.92]])  # white


def supercategory_of(class_name: str) -> str:
    """The super-category of ``class_name`` ("sheep" -> "animal")."""
    if class_name not in _CLASS_TABLE:
        raise ValueError(f"unknown class {class_name!r}; valid classes: {', '.join(CLASSES)}")
    return _CLASS_TABLE[class_name][0]


def class_set(name: str, supercategory: str | None = None, seed: int = 0) -> tuple[str, ...]:
    """The classes of one of the paper's test sets, in ``CLASSES`` order.

    "all": the 12 classes. "similar": the 3 classes of ``supercategory`` (default
    the first, "animal"). "dissimilar": 3 classes from 3 different
    super-categories, picked by ``seed``, so that it is as large as "similar".
    """
    if name not in SETS:
        raise ValueError(f"unknown class set {name!r}; valid sets: {', '.join(SETS)}")
    if supercategory is not None and name != "similar":
        raise ValueError(f"supercategory={supercategory!r} only applies to the 'similar' set, not {name!r}; "
                         "leave it out")
    if supercategory is not None and supercategory not in SUPERCATEGORIES:
        raise ValueError(f"unknown super-category {supercategory!r}; valid ones: {', '.join(SUPERCATEGORIES)}")
    if name == "all":
        return CLASSES
    if name == "similar":
        return SUPERCATEGORIES[supercategory or next(iter(SUPERCATEGORIES))]
    g = torch.Generator().manual_seed(seed)
    groups = list(SUPERCATEGORIES.values())
    chosen = sorted(torch.randperm(len(groups), generator=g)[:3].tolist())
    picks = [groups[i][int(torch.randint(len(groups[i]), (1,), generator=g))] for i in chosen]
    return tuple(c for c in CLASSES if c in picks)


# ---- silhouettes and textures, in the object's own frame: (u, v) within the unit disk ----

def _star(u, v):
    tooth = torch.remainder(torch.atan2(v, u) * 5 / (2 * math.pi), 1.0)  # where we are within one of 5 points
    return torch.hypot(u, v) <= 0.4 + 0.55 * (1 - (2 * tooth - 1).abs())


def _arrow(u, v):
    shaft = (v.abs() <= 0.18) & (u >= -0.9) & (u <= 0.2)
    head = (u >= 0.2) & (v.abs() <= 0.62 * (0.92 - u) / 0.72)
    return shaft | head


# Every silhouette stays within radius 0.95, which bounds the box (see _REACH).
_SILHOUETTES = {
    "ellipse": lambda u, v: (u / 0.95) ** 2 + (v / 0.52) ** 2 <= 1,
    "crescent": lambda u, v: (torch.hypot(u, v) <= 0.95) & (torch.hypot(u - 0.4, v) > 0.7),
    "dumbbell": lambda u, v: ((torch.hypot(u.abs() - 0.58, v) <= 0.37)
                              | ((u.abs() <= 0.6) & (v.abs() <= 0.14))),
    "square": lambda u, v: (u.abs() <= 0.67) & (v.abs() <= 0.67),
    "tee": lambda u, v: (((u.abs() <= 0.75) & (v >= 0.3) & (v <= 0.6))
                         | ((u.abs() <= 0.2) & (v >= -0.9) & (v <= 0.3))),
    "ring": lambda u, v: (torch.hypot(u, v) <= 0.95) & (torch.hypot(u, v) >= 0.55),
    "cross": lambda u, v: (((u.abs() <= 0.25) & (v.abs() <= 0.92))
                           | ((v.abs() <= 0.25) & (u.abs() <= 0.92))),
    "triangle": lambda u, v: (v >= -0.5) & (v <= 0.95 - math.sqrt(3) * u.abs()),
    "half_disk": lambda u, v: (torch.hypot(u, v) <= 0.95) & (v >= -0.2),
    "hourglass": lambda u, v: (v.abs() <= 0.75) & (u.abs() <= 0.08 + 0.75 * v.abs()),
    "star": _star,
    "arrow": _arrow,
}

# A point inside each silhouette (the centre, except for the two with a hole there): the pixel nearest to it
# is always painted, so that even an object 2 pixels wide in a 16-pixel image draws something and has a box.
_ANCHORS = {name: (0.0, 0.0) for name in _SILHOUETTES} | {"ring": (0.75, 0.0), "crescent": (-0.8, 0.0)}

# Which pixels take the light colour (the rest take a dark shade of it); p in [0, 1) shifts the pattern.
_TEXTURES = {
    "solid": lambda u, v, p: torch.ones_like(u, dtype=torch.bool),
    "stripes": lambda u, v, p: torch.remainder(u / 0.5 + p, 1.0) < 0.5,
    "fine_stripes": lambda u, v, p: torch.remainder(u / 0.34 + p, 1.0) < 0.5,
    "checker": lambda u, v, p: torch.remainder(torch.floor(u / 0.4 + p) + torch.floor(v / 0.4 + p), 2) == 0,
    "dots": lambda u, v, p: torch.hypot(torch.remainder(u / 0.5 + p, 1) - 0.5,
                                        torch.remainder(v / 0.5 + p, 1) - 0.5) > 0.3,
    "bands": lambda u, v, p: torch.remainder(torch.hypot(u, v) / 0.35 + p, 1.0) < 0.5,
    "halves": lambda u, v, p: u > 0.4 * (p - 0.5),
    "rim": lambda u, v, p: torch.hypot(u, v) > 0.55 + 0.1 * p,
    "sectors": lambda u, v, p: torch.remainder(torch.atan2(v, u) * 3 / math.pi + p, 1.0) < 0.5,
    "zigzag": lambda u, v, p: torch.remainder(u / 0.5 + (2 * torch.remainder(v / 0.4, 1) - 1).abs() + p, 1) < 0.5,
    "spots": lambda u, v, p: torch.hypot(torch.remainder(u / 0.5 + p, 1) - 0.5,
                                         torch.remainder(v / 0.5 + p, 1) - 0.5) < 0.25,
    "grid": lambda u, v, p: (torch.remainder(u / 0.4 + p, 1) > 0.25) & (torch.remainder(v / 0.4 + p, 1) > 0.25),
}

# A silhouette point is at most 0.95 * 1.15 (aspect stretch) radii from the centre; the outline adds a pixel.
_REACH = 1.15


# ---- scene backgrounds: each painter returns (m, 3, S, S), before the shared jitter ----

def _grid(size):
    """Pixel-centre coordinates in [0, 1]: y (1, 1, S, 1) down the image, x (1, 1, 1, S) across it."""
    t = (torch.arange(size) + 0.5) / size
    return t.view(1, 1, size, 1), t.view(1, 1, 1, size)


def _rgb(r, g, b):
    return torch.tensor([r, g, b]).view(1, 3, 1, 1)


def _uniform(m, lo, hi, g):
    """One value per image, (m, 1, 1, 1), uniform in [lo, hi)."""
    return lo + (hi - lo) * torch.rand(m, 1, 1, 1, generator=g)


def _noise(m, size, g, rows, cols):
    """Smooth noise (m, 1, S, S) of about unit std: a rows x cols grid of normals, upsampled."""
    coarse = torch.randn(m, 1, rows, cols, generator=g)
    return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


def _lerp(a, b, t):
    return a + (b - a) * t


def _above_horizon(m, size, g, lo, hi, ground, top=(0.3, 0.5, 0.85), bottom=(0.7, 0.82, 0.95)):
    """``ground`` (m, 3, S, S) with a sky gradient above a random horizon at height in [lo, hi) of the image."""
    y, _ = _grid(size)
    horizon = _uniform(m, lo, hi, g)
    sky = _lerp(_rgb(*top), _rgb(*bottom), (y / horizon).clamp(0, 1))
    return torch.where(y < horizon, sky, ground), horizon


def _sky(m, size, g):
    y, _ = _grid(size)
    blue = _lerp(_rgb(0.22, 0.42, 0.85), _rgb(0.62, 0.78, 0.96), y)
    clouds = (0.5 * _noise(m, size, g, 4, 4) - 0.15).clamp(0, 0.9)
    return _lerp(blue, _rgb(0.97, 0.97, 0.97), clouds)


def _water(m, size, g):
    y, x = _grid(size)
    horizon = _uniform(m, 0.05, 0.3, g)
    depth = ((y - horizon) / (1 - horizon)).clamp(0, 1)
    wobble = 0.02 * torch.sin(2 * math.pi * (3 * x + _uniform(m, 0, 1, g)))
    waves = torch.sin(2 * math.pi * _uniform(m, 6, 11, g) * (y + wobble) * (1 + depth) + _uniform(m, 0, 6.3, g))
    sea = _lerp(_rgb(0.12, 0.38, 0.58), _rgb(0.02, 0.14, 0.33), depth) + 0.07 * waves
    return torch.where(y < horizon, _lerp(_rgb(0.45, 0.62, 0.9), _rgb(0.75, 0.85, 0.95), y / horizon), sea)


def _grass(m, size, g):
    y, _ = _grid(size)
    blades = _noise(m, size, g, 3, max(size // 2, 2))  # smooth down the image, sharp across: upright blades
    ground = _lerp(_rgb(0.38, 0.68, 0.22), _rgb(0.14, 0.45, 0.08), y) + _rgb(0.03, 0.08, 0.02) * blades
    return _above_horizon(m, size, g, 0.1, 0.35, ground)[0]


def _forest(m, size, g):
    y, x = _grid(size)
    leaves = _noise(m, size, g, 8, 8)
    canopy = _lerp(_rgb(0.1, 0.32, 0.12), _rgb(0.05, 0.2, 0.06), y) + _rgb(0.04, 0.08, 0.03) * leaves
    trunks = torch.sin(2 * math.pi * (_uniform(m, 2.5, 5.5, g) * x + _uniform(m, 0, 1, g))) > 0.75
    return torch.where(trunks, _rgb(0.3, 0.2, 0.12) + 0.03 * leaves, canopy)


def _road(m, size, g):
    y, x = _grid(size)
    gravel = _rgb(0.26, 0.26, 0.24) + 0.05 * torch.randn(m, 1, size, size, generator=g)
    ground, horizon = _above_horizon(m, size, g, 0.15, 0.35, gravel, top=(0.55, 0.6, 0.7), bottom=(0.8, 0.82, 0.85))
    below = y >= horizon
    near = ((y - horizon) / (1 - horizon)).clamp(0, 1)  # 0 at the horizon, 1 at the bottom: perspective
    off = (x - _uniform(m, 0.4, 0.6, g)).abs()
    half_width = 0.04 + 0.5 * near
    edge = ((off - half_width).abs() < 0.01 + 0.02 * near) & below
    dashes = (off < 0.006 + 0.015 * near) & (torch.remainder(4 / (near + 0.15) + _uniform(m, 0, 1, g), 1) < 0.5)
    road = torch.where((off < half_width) & below, _rgb(0.42, 0.42, 0.44), ground)
    road = torch.where(edge, _rgb(0.95, 0.95, 0.95), road)
    return torch.where(dashes & below, _rgb(0.95, 0.8, 0.2), road)


def _sand(m, size, g):
    y, x = _grid(size)
    ripple = 0.15 * torch.sin(2 * math.pi * (_uniform(m, 1, 2.5, g) * x + _uniform(m, 0, 1, g)))
    dunes = torch.sin(2 * math.pi * (_uniform(m, 2, 4, g) * y + ripple))
    grain = 0.03 * torch.randn(m, 1, size, size, generator=g)
    ground = _rgb(0.88, 0.74, 0.5) + _rgb(0.07, 0.07, 0.05) * dunes + grain
    return _above_horizon(m, size, g, 0.1, 0.3, ground)[0]


def _snow(m, size, g):
    shadows = _noise(m, size, g, 3, 3).clamp(-1, 1)
    ground = _rgb(0.94, 0.95, 0.98) - _rgb(0.07, 0.05, 0.0) * shadows.clamp(0, 1)
    return _above_horizon(m, size, g, 0.1, 0.35, ground, top=(0.66, 0.7, 0.78), bottom=(0.84, 0.86, 0.9))[0]


def _indoor(m, size, g):
    y, _ = _grid(size)
    horizon = _uniform(m, 0.3, 0.5, g)
    grain = _noise(m, size, g, max(size // 2, 2), 3)  # sharp down the image, smooth across: wood grain
    seams = torch.remainder((y - horizon) / _uniform(m, 0.06, 0.11, g), 1.0) < 0.15
    floor = torch.where(seams, _rgb(0.3, 0.18, 0.1), _rgb(0.58, 0.37, 0.2) + _rgb(0.05, 0.03, 0.02) * grain)
    wall = _rgb(0.86, 0.82, 0.72) + 0.02 * torch.randn(m, 1, size, size, generator=g)
    skirting = (y >= horizon) & (y < horizon + 0.04)
    return torch.where(y < horizon, wall, torch.where(skirting, _rgb(0.95, 0.95, 0.92), floor))


_PAINTERS = {"grass": _grass, "forest": _forest, "road": _road, "sand": _sand,
             "sky": _sky, "water": _water, "snow": _snow, "indoor": _indoor}


def _paint_scenes(scenes: torch.Tensor, size: int, g: torch.Generator) -> torch.Tensor:
    """Backgrounds (n, 3, S, S) for the scene indices ``scenes`` (n,), with per-image brightness and tint."""
    n = len(scenes)
    images = torch.empty(n, 3, size, size)
    for s, name in enumerate(SCENE_TYPES):
        idx = (scenes == s).nonzero().squeeze(1)
        if len(idx):
            images[idx] = _PAINTERS[name](len(idx), size, g).expand(len(idx), 3, size, size)
    brightness = _uniform(n, 0.85, 1.15, g)
    tint = 0.04 * (2 * torch.rand(n, 3, 1, 1, generator=g) - 1)
    return images.mul_(brightness).add_(tint)


# ---- objects ----

def _layout(counts: torch.Tensor, size: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Radius (n, 2) and centre (n, 2, 2) as (x, y), in pixels, of each image's two instance slots."""
    n, two = len(counts), (counts == 2)[:, None]
    # Radii that keep each box (at most 2 * _REACH * r + 3 px a side) within half the image area,
    # and let two instances sit in two halves of the image without touching.
    hi_one = min(0.28 * size, (size / math.sqrt(2) - 3) / (2 * _REACH))
    hi_two = min(0.2 * size, (size / 4 - 1.5) / _REACH)
    lo_one, lo_two = min(0.16 * size, hi_one), min(0.12 * size, hi_two)
    spread = torch.rand(n, 2, generator=g)
    radius = torch.where(two, lo_two + (hi_two - lo_two) * spread, lo_one + (hi_one - lo_one) * spread)
    reach = (_REACH * radius)[..., None]
    # At most 20% of the reach may leave the image: objects stay mostly inside (their boxes are clipped).
    free = torch.rand(n, 2, 2, generator=g)
    centre = 0.8 * reach + free * (size - 1.6 * reach)
    # Two instances: each wholly inside its own half along a random axis, so they never overlap.
    in_half = torch.arange(2)[:, None] * size / 2 + (reach + 1) + free * (size / 2 - 2 * (reach + 1))
    axis = torch.randint(0, 2, (n, 1, 1), generator=g)
    return radius, torch.where(two[..., None] & (torch.arange(2) == axis), in_half, centre)


def _object_frame(centre, radius, angle, aspect, size):
    """Every pixel centre in the frames of m objects, (u, v) each (m, S, S): the object spans the unit disk.

    ``centre`` (m, 2) pixels; ``radius`` (m,) pixels; ``angle`` (m,) radians;
    ``aspect`` (m,) stretches u by it and v by its inverse.
    """
    pixel = torch.arange(size) + 0.5
    dx = pixel.view(1, 1, size) - centre[:, 0].view(-1, 1, 1)
    dy = pixel.view(1, size, 1) - centre[:, 1].view(-1, 1, 1)
    cos, sin = torch.cos(angle).view(-1, 1, 1), torch.sin(angle).view(-1, 1, 1)
    r, a = radius.view(-1, 1, 1), aspect.view(-1, 1, 1)
    return (cos * dx + sin * dy) / (r * a), (cos * dy - sin * dx) * a / r


def _body(silhouette: str, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The (m, S, S) pixels inside ``silhouette``, always including the pixel nearest its anchor."""
    body = _SILHOUETTES[silhouette](u, v)
    su, sv = _ANCHORS[silhouette]
    nearest = ((u - su) ** 2 + (v - sv) ** 2).flatten(1).argmin(1)
    body.view(len(body), -1)[torch.arange(len(body)), nearest] = True
    return body


def _draw_objects(images: torch.Tensor, labels: torch.Tensor, counts: torch.Tensor,
                  g: torch.Generator) -> torch.Tensor:
    """Paint ``counts[i]`` (1 or 2) instances of class ``labels[i]`` onto ``images`` (n, 3, S, S), in place.

    Returns the (n, 2, S, S) bool masks of the pixels each instance painted
    (slot 1 is empty for one instance). Two instances never overlap, so each
    mask is exactly what that instance drew.
    """
    n, _, size, _ = images.shape
    radius, centre = _layout(counts, size, g)
    angle = 2 * math.pi * torch.rand(n, 2, generator=g)
    aspect = 0.85 + 0.3 * torch.rand(n, 2, generator=g)
    phase = torch.rand(n, 2, generator=g)
    hues = torch.tensor([row[3] for row in _CLASS_TABLE.values()])[labels]  # (n, 3) the class's own hues
    hue = hues.gather(1, torch.randint(0, 3, (n, 2), generator=g))
    light = (_PALETTE[hue] * (0.75 + 0.3 * torch.rand(n, 2, 1, generator=g))
             + 0.04 * torch.randn(n, 2, 3, generator=g)).clamp(0, 1)  # (n, 2, 3)
    outline = 0.05 + 0.1 * torch.rand(n, 2, generator=g)

    masks = torch.zeros(n, 2, size, size, dtype=torch.bool)
    for slot in range(2):
        for c, (_, silhouette, texture, _, _) in enumerate(_CLASS_TABLE.values()):
            idx = ((labels == c) & (counts > slot)).nonzero().squeeze(1)
            if not len(idx):
                continue
            u, v = _object_frame(centre[idx, slot], radius[idx, slot], angle[idx, slot], aspect[idx, slot], size)
            body = _body(silhouette, u, v)
            # A dark one-pixel outline keeps the silhouette visible on a background of its own colour.
            drawn = F.max_pool2d(body[:, None].float(), 3, stride=1, padding=1)[:, 0] > 0
            bright = _TEXTURES[texture](u, v, phase[idx, slot].view(-1, 1, 1))
            colour = light[idx, slot].view(-1, 3, 1, 1)
            fill = torch.where(bright[:, None], colour, 0.35 * colour)
            edge = outline[idx, slot].view(-1, 1, 1, 1)
            images[idx] = torch.where(body[:, None], fill, torch.where(drawn[:, None], edge, images[idx]))
            masks[idx, slot] = drawn
    return masks


def _tight_boxes(masks: torch.Tensor, counts: torch.Tensor) -> list[torch.Tensor]:
    """Per image, the (k, 4) int64 boxes (x0, y0, x1, y1), ends exclusive, around each instance mask (n, 2, S, S)."""
    def span(hit):  # (n, 2, S) bool -> first hit, one past the last hit
        return hit.float().argmax(-1), hit.shape[-1] - hit.flip(-1).float().argmax(-1)

    (x0, x1), (y0, y1) = span(masks.any(2)), span(masks.any(3))
    boxes = torch.stack([x0, y0, x1, y1], -1).long()
    if not masks.flatten(2).any(2)[torch.arange(2) < counts[:, None]].all():
        raise RuntimeError("an object instance drew no pixel; this is a bug in course_lib.data.scenes")
    return [boxes[i, :k] for i, k in enumerate(counts.tolist())]


# ---- the draws ----

def _class_indices(classes) -> list[int]:
    """Global class indices of ``classes`` (None, names or indices), checked."""
    if classes is None:
        return list(range(len(CLASSES)))
    if isinstance(classes, (str, int)):
        classes = [classes]
    picked = []
    for c in classes:
        if isinstance(c, str):
            if c not in _CLASS_TABLE:
                raise ValueError(f"unknown class {c!r}; valid classes: {', '.join(CLASSES)}")
            picked.append(CLASSES.index(c))
        else:
            i = operator.index(c)
            if not 0 <= i < len(CLASSES):
                raise ValueError(f"class index {i} is out of range; use 0-{len(CLASSES) - 1} or a name from "
                                 f"{', '.join(CLASSES)}")
            picked.append(i)
    if not picked or len(set(picked)) != len(picked):
        raise ValueError(f"classes must name each class once and at least one (got {list(classes)}); "
                         "pass None for all 12")
    return picked


def _check_draw(n: int, size: int, context: float = 0.0) -> None:
    if n < 1:
        raise ValueError(f"n={n}: draw at least one image")
    if size < 16:
        raise ValueError(f"size={size}: images must be at least 16 pixels wide for the objects to be drawn")
    if not 0 <= context <= 1:
        raise ValueError(f"context={context} is a probability: pass a value in [0, 1] "
                         "(0: scene independent of the class, 1: always the class's own scenes)")


def _finish(images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Add grey sensor noise (a random level per image), then round to 8-bit levels like a photograph.

    The 8-bit levels also let the cache store uint8 and read back exactly these values.
    """
    n, _, size, _ = images.shape
    noise = _uniform(n, 0.01, 0.03, g) * torch.randn(n, 1, size, size, generator=g)
    return images.add_(noise).clamp_(0, 1).mul_(255).round_().div_(255)


def draw_scenes(n: int, seed: int = 0, context: float = 0.9, classes=None, size: int = 64) -> dict:
    """Draw ``n`` images of objects in context (deterministic per ``seed``).

    ``classes``: None for all 12, or names / indices to draw from, uniformly.
    ``context``: the probability that an image's scene comes from its class's own
    scene preferences; otherwise it is uniform over the 8 scene types.

    Returns a dict of ``images`` (n, 3, S, S) float32 in [0, 1] (8-bit levels);
    ``labels`` (n,) int64 indices into ``CLASSES``; ``scenes`` (n,) int64
    indices into ``SCENE_TYPES``; ``boxes``, a list of n (k, 4) int64 boxes
    (x0, y0, x1, y1) in pixels, ends exclusive, the tightest around each of the
    k in {1, 2} instances' drawn pixels; ``instance_masks`` (n, 2, S, S) bool
    (slot 1 empty when k = 1) and ``masks`` (n, S, S) bool, their union.
    """
    picked = _class_indices(classes)
    _check_draw(n, size, context)
    g = torch.Generator().manual_seed(seed)
    labels = torch.tensor(picked)[torch.randint(len(picked), (n,), generator=g)]
    first = torch.tensor([row[4] for row in _CLASS_TABLE.values()])[labels]
    own = torch.tensor([_OWN_SCENES[row[0]] for row in _CLASS_TABLE.values()])[labels]  # (n, 2)
    own = own.gather(1, (torch.rand(n, generator=g) >= first).long()[:, None])[:, 0]
    anywhere = torch.randint(len(SCENE_TYPES), (n,), generator=g)
    scenes = torch.where(torch.rand(n, generator=g) < context, own, anywhere)
    counts = 1 + (torch.rand(n, generator=g) < 0.5).long()
    images = _paint_scenes(scenes, size, g)
    instance_masks = _draw_objects(images, labels, counts, g)
    return {"images": _finish(images, g), "labels": labels, "scenes": scenes,
            "boxes": _tight_boxes(instance_masks, counts), "masks": instance_masks.any(1),
            "instance_masks": instance_masks}


def draw_backgrounds(n: int, seed: int = 0, size: int = 64) -> dict:
    """Scenes without objects: ``images`` (n, 3, S, S) in [0, 1] and ``scenes`` (n,) uniform over ``SCENE_TYPES``."""
    _check_draw(n, size)
    g = torch.Generator().manual_seed(seed)
    scenes = torch.randint(len(SCENE_TYPES), (n,), generator=g)
    return {"images": _finish(_paint_scenes(scenes, size, g), g), "scenes": scenes}


# ---- blurring the boxes (the paper's Gaussian-blur attack) ----

def scale_sigma(sigma_224: float, size: int) -> float:
    """A blur sigma given for 224-pixel images (the paper's), in pixels of ``size``-pixel images."""
    return sigma_224 * size / 224


def _box_table(boxes, b: int, h: int, w: int) -> torch.Tensor:
    """``boxes`` (a list of (k, 4) or a (B, K, 4) tensor) as a checked (B, K, 4) int64 table, zero rows padding."""
    if isinstance(boxes, torch.Tensor) and boxes.dim() == 3:
        table = boxes.detach().cpu().double()
    else:
        rows = [torch.as_tensor(r).detach().cpu() for r in boxes]
        rows = [r.reshape(0, 4) if r.numel() == 0 else r for r in rows]  # no box at all: blur nothing there
        for i, r in enumerate(rows):
            if r.dim() != 2 or r.shape[1] != 4:
                raise ValueError(f"the boxes of image {i} have shape {tuple(r.shape)}; each image's boxes "
                                 "must be (k, 4): rows of (x0, y0, x1, y1)")
        table = torch.zeros(len(rows), max([len(r) for r in rows] + [1]), 4, dtype=torch.float64)
        for i, r in enumerate(rows):
            table[i, :len(r)] = r.double()
    if len(table) != b or table.shape[-1] != 4:
        raise ValueError(f"boxes of shape {tuple(table.shape)} do not fit {b} images: pass a list of {b} (k, 4) "
                         f"tensors or a ({b}, K, 4) tensor")
    if not torch.equal(table, table.round()):
        raise ValueError("boxes are whole pixels (x0, y0, x1, y1), but some are not whole numbers; round them")
    table = table.long()
    x0, y0, x1, y1 = table.unbind(-1)
    padding = (table == 0).all(-1)
    bad = ~padding & ~((0 <= x0) & (x0 < x1) & (x1 <= w) & (0 <= y0) & (y0 < y1) & (y1 <= h))
    if bad.any():
        i, k = bad.nonzero()[0].tolist()
        raise ValueError(f"box {tuple(table[i, k].tolist())} of image {i} is not a box inside the image of "
                         f"width {w} and height {h}: boxes are (x0, y0, x1, y1) pixels with 0 <= x0 < x1 <= {w} "
                         f"and 0 <= y0 < y1 <= {h}, and (0, 0, 0, 0) is padding; scale boxes to this image size")
    return table


def gaussian_blurred(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """``images`` (B, C, H, W) blurred by a Gaussian of std ``sigma`` > 0 pixels (reflect padding).

    The kernel is 2 * ceil(3 * sigma) + 1 pixels, capped at 2 * min(H, W) - 1 (the
    largest that reflect padding allows). The Gaussian is separable: torchvision's one
    2-D pass costs kernel^2 operations per pixel, a pass along x and then one along y
    (kernel size 1 on the other axis) 2 * kernel, with the same result up to rounding
    (tests/test_scenes.py compares the two): at sigma 45 px @ 224 on 64 px images,
    0.3 s instead of 3.6 s for 600 images on 2 cores.
    """
    from torchvision.transforms.functional import gaussian_blur

    kernel = min(2 * math.ceil(3 * sigma) + 1, 2 * min(images.shape[-2:]) - 1)
    return gaussian_blur(gaussian_blur(images, [kernel, 1], [sigma, sigma]), [1, kernel], [sigma, sigma])


def blur_boxes(images: torch.Tensor, boxes, sigma: float) -> torch.Tensor:
    """A copy of ``images`` (B, C, H, W) Gaussian-blurred inside ``boxes`` only, bit-identical elsewhere.

    ``boxes``: a list of B (k, 4) tensors or a (B, K, 4) tensor of (x0, y0, x1,
    y1) pixels, ends exclusive; (0, 0, 0, 0) rows are padding and blur nothing.
    ``sigma``: the blur's std in pixels of these images (``scale_sigma``
    converts the paper's 224-pixel sigmas); 0 returns an unchanged copy.

    The whole image is blurred with torchvision's ``gaussian_blur`` (reflect
    padding; an odd kernel of 2 * ceil(3 * sigma) + 1 pixels, capped at
    2 * min(H, W) - 1, the largest that reflect padding allows) and pasted
    inside the boxes. So a pixel near a box edge mixes in its neighbours
    outside the box, as a convolution of the image restricted to the box does.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be (B, C, H, W); got shape {tuple(images.shape)}")
    sigma = float(sigma)
    if not sigma >= 0 or math.isinf(sigma):
        raise ValueError(f"sigma={sigma}: the blur's std must be finite and >= 0 pixels (0: no blur)")
    b, _, h, w = images.shape
    table = _box_table(boxes, b, h, w).to(images.device)
    if sigma == 0:
        return images.clone()
    blurred = gaussian_blurred(images, sigma)
    x0, y0, x1, y1 = (t[..., None, None] for t in table.unbind(-1))  # (B, K, 1, 1) each
    ys = torch.arange(h, device=images.device).view(h, 1)
    xs = torch.arange(w, device=images.device).view(1, w)
    inside = ((xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)).any(1)  # (B, H, W)
    return torch.where(inside[:, None], blurred, images)


# ---- datasets ----

def _padded_boxes(boxes: list[torch.Tensor]) -> torch.Tensor:
    """A list of (k <= 2, 4) boxes as one (n, 2, 4) tensor, zero rows as padding (a DataLoader can batch it)."""
    table = torch.zeros(len(boxes), 2, 4, dtype=torch.int64)
    for i, b in enumerate(boxes):
        table[i, :len(b)] = b
    return table


class ScenesDataset(Dataset):
    """The images of ``draw`` (see ``draw_scenes``) whose class is in ``classes``, as dict items.

    Each item: ``x`` (3, H, W) float in [0, 1]; ``y`` int64, the index into
    ``classes`` (0 .. len(classes) - 1); ``scene`` int64, the index into
    ``SCENE_TYPES``; ``boxes`` (2, 4) int64, a zero row padding a single
    instance; ``mask`` (H, W) bool, the object pixels. A draw of all 12 classes
    thus serves every class set.
    """

    def __init__(self, draw: dict, classes=None):
        picked = _class_indices(classes)
        self.classes = tuple(CLASSES[i] for i in picked)
        self.draw = draw
        lookup = torch.full((len(CLASSES),), -1, dtype=torch.int64)
        lookup[picked] = torch.arange(len(picked))
        self._index = (lookup[draw["labels"]] >= 0).nonzero().squeeze(1)
        if not len(self._index):
            raise ValueError(f"the draw holds no image of {', '.join(self.classes)}; draw these classes")
        self._y = lookup[draw["labels"][self._index]]
        self._boxes = _padded_boxes([draw["boxes"][i] for i in self._index.tolist()])

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, i: int) -> dict:
        j = self._index[i]
        return {"x": self.draw["images"][j], "y": self._y[i], "scene": self.draw["scenes"][j],
                "boxes": self._boxes[i], "mask": self.draw["masks"][j]}

    def tensors(self) -> dict:
        """All items at once: ``x`` (N, 3, H, W), ``y``, ``scene`` (N,), ``boxes`` (N, 2, 4), ``mask`` (N, H, W)."""
        return {"x": self.draw["images"][self._index], "y": self._y.clone(),
                "scene": self.draw["scenes"][self._index], "boxes": self._boxes.clone(),
                "mask": self.draw["masks"][self._index]}


class SceneOnlyDataset(Dataset):
    """Backgrounds without objects (see ``draw_backgrounds``) labelled by scene type.

    Items ``{"x": (3, H, W), "y": scene index}``: the stand-in for the Places365
    images a scene-centric network is pretrained on.
    """

    classes = SCENE_TYPES

    def __init__(self, draw: dict):
        self.draw = draw

    def __len__(self) -> int:
        return len(self.draw["scenes"])

    def __getitem__(self, i: int) -> dict:
        return {"x": self.draw["images"][i], "y": self.draw["scenes"][i]}

    def tensors(self) -> dict:
        """All items at once: ``x`` (N, 3, H, W) and ``y`` (N,)."""
        return {"x": self.draw["images"], "y": self.draw["scenes"]}


# ---- cached draws and the zoo's data sources ----

@functools.lru_cache(maxsize=32)
def _read_cached(path: str, inode: int, mtime_ns: int, size: int) -> dict:
    """One cached draw as stored (8-bit images), read once per process and file version.

    A zoo key needs the data of every model (``course models list`` reads the same
    splits dozens of times, chapter 10 a dozen): unpickling each file again took
    most of that time. ``inode`` (the kit replaces files whole, so a new file is a new
    inode, whatever the clock's resolution), ``mtime_ns`` and ``size`` make a rewritten
    file a new entry.
    """
    try:
        stored = torch.load(path, weights_only=True)
    except Exception as err:  # a file cut short or written by another torch: say which, don't guess
        raise RuntimeError(f"the cached scenes {path} cannot be read ({err}); delete the file and they "
                           "are drawn again") from err
    stored.pop("parameters")
    return stored


def _cached(parameters: dict, draw, data_home) -> dict:
    """``draw()``, or what an earlier call with the same ``parameters`` saved under ``DATA_HOME/scenes``."""
    from ..config import data_home as resolve_home
    from ..io import atomic_torch_save

    blob = json.dumps({**parameters, "generator_version": GENERATOR_VERSION}, sort_keys=True)
    path = resolve_home(data_home) / "scenes" / f"{hashlib.sha256(blob.encode()).hexdigest()[:16]}.pt"
    if path.is_file():
        stat = path.stat()
        stored = _read_cached(str(path), stat.st_ino, stat.st_mtime_ns, stat.st_size)
        # fresh tensors for every caller: no dataset can change another's by writing in place
        return {key: value.clone() if torch.is_tensor(value) else copy.deepcopy(value)
                for key, value in stored.items() if key != "images"} | {"images": stored["images"].float() / 255}
    result = draw()
    # 8-bit images: a quarter of the space, and float / 255 gives back exactly the drawn values.
    atomic_torch_save(path, {**result, "images": torch.round(result["images"] * 255).to(torch.uint8),
                             "parameters": blob})
    return result


def load_scenes(n: int, seed: int = 0, context: float = 0.9, classes=None, size: int = 64,
                data_home=None) -> dict:
    """``draw_scenes(n, seed, context, classes, size)``, cached under ``DATA_HOME/scenes``."""
    picked = [CLASSES[i] for i in _class_indices(classes)]
    parameters = {"kind": "scenes", "n": n, "seed": seed, "context": float(context), "classes": picked,
                  "size": size}
    return _cached(parameters, lambda: draw_scenes(n, seed, context, picked, size), data_home)


def load_backgrounds(n: int, seed: int = 0, size: int = 64, data_home=None) -> dict:
    """``draw_backgrounds(n, seed, size)``, cached under ``DATA_HOME/scenes``."""
    parameters = {"kind": "backgrounds", "n": n, "seed": seed, "size": size}
    return _cached(parameters, lambda: draw_backgrounds(n, seed, size), data_home)


# Split offsets of the draw seed: 3 * seed + offset, so no two (seed, split) pairs ever share images.
_SPLIT_SEEDS = (("n_train", 0), ("n_val", 1), ("n_test", 2))


def scenes_splits(profile, settings: dict, data_home=None, seed: int = 0):
    """Zoo data source: ``ScenesDataset`` train / val / test of one class set, each drawn with its own seed.

    ``settings``: ``class_set`` ("all", "similar", "dissimilar"), optional
    ``supercategory`` (for "similar") and ``set_seed`` (for "dissimilar",
    default 0), ``context`` (default 0.9), ``n_train``, ``n_val``, ``n_test``
    and ``size`` (default 64). ``profile`` is accepted for the zoo's signature;
    the full profile's MS COCO source is ``data/coco.py``.
    """
    from .splits import Splits

    name = settings["class_set"]
    classes = class_set(name, settings.get("supercategory"), seed=settings.get("set_seed", 0))
    context, size = float(settings.get("context", 0.9)), int(settings.get("size", 64))
    parts = [ScenesDataset(load_scenes(settings[key], 3 * seed + offset, context, classes, size, data_home),
                           classes) for key, offset in _SPLIT_SEEDS]
    identity = {"scenes": GENERATOR_VERSION, "class_set": name, "classes": list(classes), "context": context,
                "size": size, "seed": seed, **{key: settings[key] for key, _ in _SPLIT_SEEDS}}
    return Splits(*parts, source=f"objects in context drawn by course_lib: the {name!r} set "
                                 f"({', '.join(classes)}), context {context}, {size} px", identity=identity)


def scene_only_splits(profile, settings: dict, data_home=None, seed: int = 0):
    """Zoo data source: ``SceneOnlyDataset`` train / val / test (``n_train``, ``n_val``, ``n_test``, ``size``)."""
    from .splits import Splits

    size = int(settings.get("size", 64))
    parts = [SceneOnlyDataset(load_backgrounds(settings[key], 3 * seed + offset, size, data_home))
             for key, offset in _SPLIT_SEEDS]
    identity = {"scene_backgrounds": GENERATOR_VERSION, "size": size, "seed": seed,
                **{key: settings[key] for key, _ in _SPLIT_SEEDS}}
    return Splits(*parts, source=f"scene backgrounds without objects drawn by course_lib "
                                 f"({len(SCENE_TYPES)} scene types, {size} px)", identity=identity)
