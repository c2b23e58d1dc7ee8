"""MS COCO objects in context: the contextual-fusion chapter's real data (``full`` profile).

Akumalla, Haney and Bazhenov (section 2.2) keep the COCO images that show one
kind of object, once or twice, on a background that fills at least half the
image, so that a scene-centric network has context to read. ``coco_filter``
is that filter, ``choose_classes`` the 24 classes that remain, ``class_set``
the paper's All / Similar / Dissimilar sets, ``split_per_class`` its 75/25
split, and ``CocoObjectsDataset`` yields the same items as the generated
scenes of the ``quick`` profile (``data/scenes.py``).

Layout under ``DATA_HOME`` (what the two official zips unpack to)::

    coco/annotations/instances_train2017.json   from annotations_trainval2017.zip
    coco/train2017/000000000009.jpg ...          from train2017.zip

COCO publishes no checksums for its zips or files; the annotation file's size
and the list of images the filter keeps go into the zoo's cache key instead.
Reading the annotations needs ``pycocotools``.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

SPLITS = ("train", "val", "test")
N_CLASSES = 24  # classes left after the paper's filter ("24 classes with 7500 images")
SUBSET_CLASSES = 8  # classes in the paper's Similar and Dissimilar sets
CLASS_SETS = ("all", "similar", "dissimilar")
MAX_INSTANCES = 2  # rows of an item's "boxes" (the filter keeps at most this many instances)
TRAIN_FRACTION = 0.75  # the paper: 75% of each class for training, the rest for testing
VAL_FRACTION = 0.1  # of each class's training part, held out for validation (the paper has none)

URLS = {
    "annotations": "http://images.cocodataset.org/annotations/annotations_trainval2017.zip",
    "train2017 images": "http://images.cocodataset.org/zips/train2017.zip",
    "val2017 images": "http://images.cocodataset.org/zips/val2017.zip",
}


def how_to_get(folder="DATA_HOME/coco") -> str:
    """What to download and where to unpack it, for error messages."""
    return (f"get MS COCO 2017 (https://cocodataset.org/#download): unzip {URLS['annotations']} (241 MB) "
            f"into {folder}/ (it makes annotations/instances_train2017.json), unzip {URLS['train2017 images']} "
            f"(18 GB) there too (it makes train2017/; the val2017 images are at {URLS['val2017 images']}), "
            "and `pip install pycocotools`")


_BOX_TOLERANCE = 1e-6  # pixels: float noise in a scaled box edge is not a pixel more


def load_coco(annotation_file):
    """Read a COCO-format instances JSON into a ``pycocotools.coco.COCO`` index.

    Loading ``instances_train2017.json`` takes ~20 s and ~2 GB; one loaded
    index is kept per file (path, size and modification time) and shared.
    """
    path = Path(annotation_file).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"COCO annotation file {path} does not exist; {how_to_get()}")
    try:
        from pycocotools.coco import COCO
    except ImportError as err:
        raise ImportError(f"reading COCO annotations needs pycocotools ({err}); run "
                          "`pip install pycocotools`") from err
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _LOADED:
        try:
            dataset = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path} is not a JSON file ({err}): truncated download? {how_to_get()}") from err
        missing = [k for k in ("images", "annotations", "categories") if k not in dataset]
        if not isinstance(dataset, dict) or missing:
            raise ValueError(f"{path} is not a COCO instances file (no {', '.join(missing) or 'top-level object'}); "
                             "use annotations/instances_train2017.json from " + URLS["annotations"])
        coco = COCO()
        coco.dataset = dataset
        with contextlib.redirect_stdout(io.StringIO()):  # its timing print would change every notebook run
            coco.createIndex()
        _LOADED.clear()  # one index at a time: each one is gigabytes
        _LOADED[key] = coco
    return _LOADED[key]


_LOADED: dict[tuple, object] = {}


def resolve_classes(coco, classes) -> list[int]:
    """COCO category ids for ``classes``: ids (int) or names (str), in the order given."""
    by_name = {cat["name"]: cat_id for cat_id, cat in coco.cats.items()}
    ids = []
    for entry in classes:
        cat_id = by_name.get(entry) if isinstance(entry, str) else int(entry)
        if cat_id not in coco.cats:
            raise ValueError(f"unknown COCO category {entry!r}; valid names: {', '.join(sorted(by_name))}")
        ids.append(cat_id)
    if not ids:
        raise ValueError("classes is empty; give COCO category ids or names")
    if len(set(ids)) != len(ids):
        raise ValueError(f"classes {list(classes)} name a category twice")
    return ids


def union_area(boxes) -> float:
    """Area covered by the union of COCO boxes ``[x, y, w, h]`` (same units as the boxes)."""
    boxes = [(x, y, x + w, y + h) for x, y, w, h in boxes]
    xs = sorted({b[0] for b in boxes} | {b[2] for b in boxes})
    ys = sorted({b[1] for b in boxes} | {b[3] for b in boxes})
    area = 0.0
    # Cut the plane along every box edge; each cell is wholly inside or outside each box.
    for x0, x1 in zip(xs, xs[1:]):
        for y0, y1 in zip(ys, ys[1:]):
            if any(b[0] <= x0 and x1 <= b[2] and b[1] <= y0 and y1 <= b[3] for b in boxes):
                area += (x1 - x0) * (y1 - y0)
    return area


def coco_filter(coco, max_instances: int = MAX_INSTANCES, max_box_fraction: float = 0.5,
                classes=None) -> list[tuple[int, int]]:
    """The paper's filter: images of one object, once or twice, on mostly background.

    Section 2.2 keeps "images with fewer than two instances (<= 2) of a single
    object" and constrains "the percentage of foreground to be less than or
    equal to fifty percent of the total image, where foreground was defined by
    the area within the bounding box". Read here as, per image:

    - every annotation is of one and the same category (a second category is
      co-occurring context);
    - 1 to ``max_instances`` annotations, none of them a crowd (``iscrowd=1``
      marks a group of many instances, so such an image has more than two);
    - the union of the boxes covers at most ``max_box_fraction`` of the image
      area (width x height), so two overlapping boxes count their overlap once.

    ``classes``: category ids or names to keep (None: any). Returns
    ``(image_id, category_id)`` pairs in increasing image id.
    """
    if max_instances < 1:
        raise ValueError(f"max_instances must be at least 1, got {max_instances}")
    if not 0 < max_box_fraction <= 1:
        raise ValueError(f"max_box_fraction is a share of the image in (0, 1], got {max_box_fraction}")
    wanted = None if classes is None else set(resolve_classes(coco, classes))
    kept = []
    for image_id in sorted(coco.imgs):
        anns = coco.imgToAnns.get(image_id, [])
        categories = {ann["category_id"] for ann in anns}
        if not anns or len(categories) != 1 or len(anns) > max_instances:
            continue
        if any(ann.get("iscrowd", 0) for ann in anns):
            continue
        (category,) = categories
        if wanted is not None and category not in wanted:
            continue
        info = coco.imgs[image_id]
        if union_area([ann["bbox"] for ann in anns]) > max_box_fraction * info["width"] * info["height"]:
            continue
        kept.append((image_id, category))
    return kept


def choose_classes(kept, n: int = N_CLASSES) -> list[int]:
    """The ``n`` categories with the most kept images (ties: smaller id first), in increasing id.

    ``kept``: ``coco_filter``'s pairs. The paper names no classes, only that
    24 remain; this choice is deterministic and needs no seed.
    """
    counts = Counter(category for _, category in kept)
    if len(counts) < n:
        raise ValueError(f"only {len(counts)} categories have images left after the filter, "
                         f"{n} were asked for: is the annotation file complete?")
    ranked = sorted(counts, key=lambda category: (-counts[category], category))
    return sorted(ranked[:n])


def class_set(coco, classes, name: str, seed: int = 0, n: int = SUBSET_CLASSES) -> list[int]:
    """The paper's class sets, drawn from ``classes`` (category ids) with COCO's ``supercategory``.

    - "all": ``classes`` as they are (the paper's 24);
    - "similar": ``n`` classes of one supercategory (the paper's example: dog,
      horse, sheep, all animals): one supercategory with at least ``n`` of
      ``classes`` is drawn by ``seed``, then ``n`` of its classes;
    - "dissimilar": ``n`` classes of ``n`` different supercategories: ``n``
      supercategories drawn by ``seed``, then one class of each.

    Returns category ids in increasing order (the label order).
    """
    if name not in CLASS_SETS:
        raise ValueError(f"unknown class set {name!r}; valid sets: {', '.join(CLASS_SETS)}")
    classes = sorted(resolve_classes(coco, classes))
    if name == "all":
        return classes
    groups: dict[str, list[int]] = {}
    for cat_id in classes:
        groups.setdefault(coco.cats[cat_id]["supercategory"], []).append(cat_id)
    sizes = ", ".join(f"{group} {len(ids)}" for group, ids in sorted(groups.items()))
    rng = np.random.default_rng(seed)
    if name == "similar":
        large = sorted(group for group, ids in groups.items() if len(ids) >= n)
        if not large:
            raise ValueError(f"no supercategory has {n} of the {len(classes)} classes (classes per "
                             f"supercategory: {sizes}); ask for a smaller n")
        members = groups[large[rng.integers(len(large))]]
        return sorted(int(c) for c in rng.choice(members, size=n, replace=False))
    if len(groups) < n:
        raise ValueError(f"the {len(classes)} classes span only {len(groups)} supercategories "
                         f"({sizes}); a dissimilar set of {n} needs {n}")
    chosen = rng.choice(sorted(groups), size=n, replace=False)
    return sorted(int(rng.choice(groups[group])) for group in chosen)


def split_per_class(kept, seed: int = 0, train_fraction: float = TRAIN_FRACTION,
                    val_fraction: float = VAL_FRACTION) -> dict[str, list[tuple[int, int]]]:
    """The paper's 75/25 split, per class and seeded: ``{"train", "val", "test": pairs}``.

    Each class's images are shuffled by ``seed`` and the class id (so a class
    splits the same whatever other classes are kept); the first
    ``train_fraction * n`` (rounded half up) are the paper's training set, of which the
    first ``floor(val_fraction * that)`` become "val", and the rest are "test".
    Each list is in increasing image id.
    """
    by_class: dict[int, list[int]] = {}
    for image_id, category in kept:
        by_class.setdefault(category, []).append(image_id)
    parts: dict[str, list[tuple[int, int]]] = {split: [] for split in SPLITS}
    for category, image_ids in by_class.items():
        order = np.random.default_rng([seed, category]).permutation(sorted(image_ids))
        n_train = math.floor(train_fraction * len(order) + 0.5)
        n_val = math.floor(val_fraction * n_train)
        for split, ids in (("val", order[:n_val]), ("train", order[n_val:n_train]), ("test", order[n_train:])):
            parts[split] += [(int(image_id), category) for image_id in ids]
    return {split: sorted(pairs) for split, pairs in parts.items()}


def pixel_box(bbox, scale_x: float, scale_y: float, size: int) -> list[int]:
    """COCO ``[x, y, w, h]`` (float pixels) scaled, as integer ``[x0, y0, x1, y1]``, x1 and y1 exclusive.

    The integer box is the smallest one holding the scaled box, clipped to the
    ``size`` x ``size`` image and at least one pixel wide and high.
    """
    x, y, w, h = bbox
    x0 = math.floor(x * scale_x + _BOX_TOLERANCE)
    y0 = math.floor(y * scale_y + _BOX_TOLERANCE)
    x1 = math.ceil((x + w) * scale_x - _BOX_TOLERANCE)
    y1 = math.ceil((y + h) * scale_y - _BOX_TOLERANCE)
    x0, y0 = min(max(x0, 0), size - 1), min(max(y0, 0), size - 1)
    return [x0, y0, min(max(x1, x0 + 1), size), min(max(y1, y0 + 1), size)]


def instance_mask(segmentation, height: int, width: int) -> np.ndarray:
    """(height, width) bool mask of one COCO segmentation: what ``COCO.annToMask`` decodes.

    Done here from the annotation alone, so a dataset need not hold the whole
    COCO index (gigabytes, copied into every DataLoader worker).
    """
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list):  # polygons: one object may have several parts
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation.get("counts"), list):  # uncompressed RLE
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:  # compressed RLE
        rle = segmentation
    with warnings.catch_warnings():  # pycocotools' compiled decode predates NumPy 2's copy keyword
        warnings.filterwarnings("ignore", "__array__ implementation doesn't accept a copy", DeprecationWarning)
        return mask_utils.decode(rle).astype(bool)


class CocoObjectsDataset(Dataset):
    """One split of the filtered COCO images of ``classes``, resized to ``size`` x ``size``.

    Args:
        root: the image folder, e.g. ``DATA_HOME/coco/train2017``.
        annotation_file: its instances JSON, or an index already read by ``load_coco``.
        classes: category ids or names; the label ``y`` is the position in this list.
        split: "train", "val" or "test" (``split_per_class``, by ``seed``).

    ``dataset[i]`` is a dict, as the generated scenes' items:
    ``x`` (3, size, size) float in [0, 1] (stretched to a square, as the paper's
    224 x 224 inputs); ``y`` int64 label; ``scene`` int64 -1 (COCO has no scene
    label); ``boxes`` (2, 4) int64 ``[x0, y0, x1, y1]`` in output pixels, x1 and
    y1 exclusive, one row per instance in annotation-id order, a zero row as
    padding; ``mask`` (size, size) bool, the union of the instances'
    segmentation masks (nearest-neighbour resized).
    """

    def __init__(self, root, annotation_file, classes, split: str, size: int = 224, seed: int = 0):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
        if int(size) != size or size < 1:
            raise ValueError(f"size is an image side in pixels (a positive int), got {size!r}")
        coco = annotation_file if hasattr(annotation_file, "imgToAnns") else load_coco(annotation_file)
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(f"COCO image folder {self.root} does not exist; {how_to_get()}")
        self.size = int(size)
        self.split = split
        self.classes = resolve_classes(coco, classes)
        self.class_names = [coco.cats[cat_id]["name"] for cat_id in self.classes]
        label = {cat_id: index for index, cat_id in enumerate(self.classes)}
        pairs = split_per_class(coco_filter(coco, classes=self.classes), seed=seed)[split]
        # What an item needs, copied out of the index (see ``instance_mask``).
        self.records = []
        for image_id, category in pairs:
            info = coco.imgs[image_id]
            anns = sorted(coco.imgToAnns[image_id], key=lambda ann: ann["id"])
            self.records.append(dict(image_id=image_id, file_name=info["file_name"], width=info["width"],
                                     height=info["height"], label=label[category],
                                     bboxes=[ann["bbox"] for ann in anns],
                                     segmentations=[ann["segmentation"] for ann in anns]))
        missing = [r["file_name"] for r in self.records if not (self.root / r["file_name"]).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} of the {len(self.records)} {split} images are missing from {self.root} "
                f"(first: {', '.join(missing[:3])}); is it the folder of this annotation file's images? "
                + how_to_get())

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        path = self.root / record["file_name"]
        width, height, size = record["width"], record["height"], self.size
        try:
            with Image.open(path) as image:
                if image.size != (width, height):
                    raise ValueError(f"{path} is {image.size[0]}x{image.size[1]} pixels but the annotations "
                                     f"say {width}x{height}: images and annotations are from different sets")
                pixels = np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR))
        except UnidentifiedImageError as err:
            raise ValueError(f"{path} is not a readable image ({err}); download it again: {how_to_get()}") from err
        mask = np.zeros((height, width), dtype=bool)
        for segmentation in record["segmentations"]:
            mask |= instance_mask(segmentation, height, width)
        mask = np.asarray(Image.fromarray(mask).resize((size, size), Image.NEAREST))
        boxes = torch.zeros(MAX_INSTANCES, 4, dtype=torch.int64)
        for row, bbox in enumerate(record["bboxes"]):
            boxes[row] = torch.tensor(pixel_box(bbox, size / width, size / height, size))
        return {"x": torch.from_numpy(pixels.copy()).permute(2, 0, 1).float() / 255.0,
                "y": torch.tensor(record["label"], dtype=torch.int64),
                "scene": torch.tensor(-1, dtype=torch.int64),
                "boxes": boxes,
                "mask": torch.from_numpy(mask.copy())}


def coco_splits(profile, settings: dict, data_home=None, seed: int = 0):
    """Zoo data source: the filtered COCO train2017 images of a class set (``full`` profile).

    ``settings``: ``class_set`` ("all", "similar" or "dissimilar"; see
    ``class_set``, drawn by ``seed``) and ``size`` (pixels, default 224).
    The 24 classes come from ``choose_classes``; train and val together are
    the paper's 75% training part, test its 25%. The layout is in the module
    docstring. ``profile`` is not read: the quick profile uses ``data/scenes.py``.
    """
    from ..config import data_home as resolve_home
    from .splits import Splits

    name = settings.get("class_set", "all")
    if name not in CLASS_SETS:
        raise ValueError(f"unknown class set {name!r}; valid sets: {', '.join(CLASS_SETS)}")
    size = settings.get("size", 224)
    folder = resolve_home(data_home) / "coco"
    annotations = folder / "annotations" / "instances_train2017.json"
    if not annotations.is_file():
        raise FileNotFoundError(f"COCO annotation file {annotations} does not exist; {how_to_get(folder)}")
    coco = load_coco(annotations)
    classes = class_set(coco, choose_classes(coco_filter(coco)), name, seed=seed)
    parts = [CocoObjectsDataset(folder / "train2017", coco, classes, split, size=size, seed=seed)
             for split in SPLITS]
    images = hashlib.sha256(json.dumps([[r["image_id"] for r in p.records] for p in parts]).encode())
    return Splits(*parts,
                  source=(f"MS COCO train2017 from {folder}: {sum(map(len, parts))} filtered images of "
                          f"{len(classes)} classes ({name}: {', '.join(parts[0].class_names)})"),
                  identity={"coco": str(folder), "annotation_bytes": annotations.stat().st_size,
                            "class_set": name, "classes": classes, "size": size, "seed": seed,
                            "sizes": [len(p) for p in parts], "images_sha256": images.hexdigest()})
