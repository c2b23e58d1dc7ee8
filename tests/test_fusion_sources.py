"""The contextual-fusion chapter's real sources: COCO filter and dataset, CIFAR-10, the two ResNet-18s.

Everything runs on tiny files written here: nothing downloads.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from course_lib.data import cifar10, coco
from course_lib.data.splits import stack_items
from course_lib.models import places365

# pycocotools' compiled mask decoder, called here to compute expected masks, predates NumPy 2.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy:DeprecationWarning")

# -- COCO ---------------------------------------------------------------------------------------

W, H = 40, 20  # every test image: 40 x 20 pixels, so the image area is 800 and half of it 400
CATEGORIES = [
    {"id": 1, "name": "dog", "supercategory": "animal"},
    {"id": 2, "name": "cat", "supercategory": "animal"},
    {"id": 3, "name": "horse", "supercategory": "animal"},
    {"id": 4, "name": "car", "supercategory": "vehicle"},
    {"id": 5, "name": "bus", "supercategory": "vehicle"},
    {"id": 6, "name": "chair", "supercategory": "furniture"},
    {"id": 7, "name": "cup", "supercategory": "kitchen"},
]


def _rect(x, y, w, h):
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def _ann(ann_id, image_id, category, bbox, crowd=0, segmentation=None):
    return {"id": ann_id, "image_id": image_id, "category_id": category, "bbox": list(bbox),
            "area": bbox[2] * bbox[3], "iscrowd": crowd,
            "segmentation": segmentation if segmentation is not None else _rect(*bbox)}


# image id -> (annotations as (category, bbox, iscrowd), kept?)
FILTER_CASES = {
    1: ([(1, (4, 2, 10, 6), 0)], True),                                  # one dog, small box
    2: ([(1, (0, 0, 10, 10), 0), (1, (20, 5, 10, 10), 0)], True),        # two dogs
    3: ([(1, (0, 0, 5, 5), 0), (1, (10, 0, 5, 5), 0), (1, (20, 0, 5, 5), 0)], False),  # three dogs
    4: ([(1, (0, 0, 5, 5), 0), (2, (10, 0, 5, 5), 0)], False),           # a dog and a cat
    5: ([(2, (0, 0, 40, 12), 0)], False),                                # cat box 60% of the image
    6: ([(2, (0, 0, 20, 20), 0)], True),                                 # cat box exactly 50%
    7: ([(1, (0, 0, 5, 5), 1)], False),                                  # a crowd of dogs alone
    8: ([(1, (0, 0, 5, 5), 0), (1, (10, 0, 5, 5), 1)], False),           # a dog and a crowd of dogs
    9: ([(2, (0, 0, 24, 10), 0), (2, (16, 10, 24, 10), 0)], False),      # each box 30%, union 60%
    10: ([(2, (0, 0, 20, 15), 0), (2, (5, 0, 20, 15), 0)], True),        # 37.5% each, sum 75%, union 47%
    11: ([], False),                                                     # no object
}


def _coco_json(cases, categories=CATEGORIES, width=W, height=H):
    images, annotations, ann_id = [], [], 100
    for image_id, (anns, _) in cases.items():
        images.append({"id": image_id, "file_name": f"{image_id:012d}.png", "width": width, "height": height})
        for category, bbox, crowd in anns:
            annotations.append(_ann(ann_id, image_id, category, bbox, crowd))
            ann_id += 1
    return {"images": images, "annotations": annotations, "categories": categories}


def _write_coco(path: Path, dataset: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataset))
    return path


def _write_pngs(folder: Path, dataset: dict) -> None:
    """Each image: left half red = image id, right half green = 200 (so resizing can be checked)."""
    folder.mkdir(parents=True, exist_ok=True)
    for info in dataset["images"]:
        pixels = np.zeros((info["height"], info["width"], 3), np.uint8)
        pixels[:, : info["width"] // 2, 0] = info["id"]
        pixels[:, info["width"] // 2:, 1] = 200
        Image.fromarray(pixels).save(folder / info["file_name"])


def test_filter_keeps_one_category_one_or_two_instances_and_half_background(tmp_path):
    index = coco.load_coco(_write_coco(tmp_path / "ann.json", _coco_json(FILTER_CASES)))
    kept = coco.coco_filter(index)
    expected = [(i, anns[0][0]) for i, (anns, keep) in FILTER_CASES.items() if keep]
    assert kept == expected  # (1, dog), (2, dog), (6, cat), (10, cat)
    assert coco.coco_filter(index, classes=["cat"]) == [(6, 2), (10, 2)]
    assert coco.coco_filter(index, max_instances=1) == [(1, 1), (6, 2)]
    assert [i for i, _ in coco.coco_filter(index, max_box_fraction=0.3)] == [1, 2]


def test_filter_and_loader_bad_input(tmp_path):
    index = coco.load_coco(_write_coco(tmp_path / "ann.json", _coco_json(FILTER_CASES)))
    with pytest.raises(ValueError, match="unknown COCO category 'zebra'.*valid names: bus, car, cat"):
        coco.coco_filter(index, classes=["zebra"])
    with pytest.raises(ValueError, match="max_box_fraction"):
        coco.coco_filter(index, max_box_fraction=50)
    with pytest.raises(FileNotFoundError, match=r"nowhere\.json.*annotations_trainval2017\.zip.*"
                                                r"train2017\.zip.*pip install pycocotools"):
        coco.load_coco(tmp_path / "nowhere.json")
    (tmp_path / "cut.json").write_text('{"images": [')
    with pytest.raises(ValueError, match="cut.json is not a JSON file"):
        coco.load_coco(tmp_path / "cut.json")


def test_union_area_counts_overlap_once():
    assert coco.union_area([(0, 0, 20, 15), (5, 0, 20, 15)]) == 25 * 15
    assert coco.union_area([(0, 0, 2, 2), (1, 1, 2, 2), (10, 10, 1, 1)]) == 4 + 4 - 1 + 1


def _single_instance_coco(n_per_class: dict[int, int]) -> dict:
    """``n`` one-object images per category, small boxes, all kept by the filter."""
    cases, image_id = {}, 1
    for category, n in n_per_class.items():
        for _ in range(n):
            cases[image_id] = ([(category, (2, 2, 6, 6), 0)], True)
            image_id += 1
    return _coco_json(cases)


def test_split_is_75_25_per_class_deterministic_and_disjoint(tmp_path):
    index = coco.load_coco(_write_coco(tmp_path / "ann.json", _single_instance_coco({1: 13, 2: 13, 4: 8})))
    kept = coco.coco_filter(index)
    parts = coco.split_per_class(kept, seed=0)
    ids = {split: [i for i, _ in pairs] for split, pairs in parts.items()}
    assert sorted(sum(ids.values(), [])) == sorted(i for i, _ in kept)  # disjoint and complete
    counts = {split: {c: sum(1 for _, k in pairs if k == c) for c in (1, 2, 4)} for split, pairs in parts.items()}
    assert counts["test"] == {1: 3, 2: 3, 4: 2}  # 13 -> 10 train+val / 3 test; 8 -> 6 / 2
    assert counts["val"] == {1: 1, 2: 1, 4: 0}
    assert coco.split_per_class(kept, seed=0) == parts
    assert coco.split_per_class(kept, seed=1) != parts
    # A class splits the same whatever other classes are kept.
    dogs = coco.split_per_class([p for p in kept if p[1] == 1], seed=0)
    assert all(dogs[s] == [p for p in parts[s] if p[1] == 1] for s in coco.SPLITS)


def test_choose_classes_and_class_sets(tmp_path):
    index = coco.load_coco(_write_coco(tmp_path / "ann.json", _single_instance_coco(
        {1: 5, 2: 4, 3: 4, 4: 6, 5: 1, 6: 2, 7: 3})))
    kept = coco.coco_filter(index)
    assert coco.choose_classes(kept, n=3) == [1, 2, 4]  # 6, 5, then the tie 4/4 goes to the smaller id
    with pytest.raises(ValueError, match="only 7 categories"):
        coco.choose_classes(kept, n=24)
    classes = coco.choose_classes(kept, n=7)
    assert coco.class_set(index, classes, "all") == classes
    for seed in range(5):
        similar = coco.class_set(index, classes, "similar", seed=seed, n=2)
        assert len(set(index.cats[c]["supercategory"] for c in similar)) == 1 and len(similar) == 2
        dissimilar = coco.class_set(index, classes, "dissimilar", seed=seed, n=4)
        assert len(set(index.cats[c]["supercategory"] for c in dissimilar)) == 4
        assert coco.class_set(index, classes, "dissimilar", seed=seed, n=4) == dissimilar
    assert coco.class_set(index, classes, "similar", n=3) == [1, 2, 3]  # animal: the only group of 3
    assert len({tuple(coco.class_set(index, classes, "dissimilar", seed=s, n=3)) for s in range(10)}) > 1
    with pytest.raises(ValueError, match="span only 4 supercategories"):
        coco.class_set(index, classes, "dissimilar", n=5)
    with pytest.raises(ValueError, match="no supercategory has 4"):
        coco.class_set(index, classes, "similar", n=4)
    with pytest.raises(ValueError, match="unknown class set 'same'"):
        coco.class_set(index, classes, "same")


def test_dataset_items_boxes_and_masks(tmp_path):
    from pycocotools.coco import COCO

    dataset_json = _coco_json(FILTER_CASES)
    # Image 1: a fractional box, and an uncompressed-RLE mask; image 2 keeps polygon masks.
    first = dataset_json["annotations"][0]
    first["bbox"] = [3.3, 1.5, 10.2, 6.1]
    rle = np.zeros((H, W), np.uint8)
    rle[3:7, 5:12] = 1
    runs, value, count = [], 0, 0
    for pixel in rle.flatten(order="F"):  # COCO's RLE runs in column-major order, starting with zeros
        if pixel != value:
            runs.append(count)
            value, count = pixel, 0
        count += 1
    first["segmentation"] = {"counts": runs + [count], "size": [H, W]}
    annotation_file = _write_coco(tmp_path / "ann.json", dataset_json)
    _write_pngs(tmp_path / "images", dataset_json)
    index = COCO(str(annotation_file))

    items = {}
    for split in coco.SPLITS:
        data = coco.CocoObjectsDataset(tmp_path / "images", annotation_file, ["cat", "dog"], split, size=20)
        assert data.class_names == ["cat", "dog"]
        items.update({record["image_id"]: data[i] for i, record in enumerate(data.records)})
    assert sorted(items) == [1, 2, 6, 10]
    for image_id, item in items.items():
        assert set(item) == {"x", "y", "scene", "boxes", "mask"}
        assert item["x"].shape == (3, 20, 20) and item["x"].dtype == torch.float32
        assert torch.allclose(item["x"][0, :, :8], torch.full((20, 8), image_id / 255))  # left half: red = id
        assert torch.allclose(item["x"][1, :, 12:], torch.full((20, 8), 200 / 255))
        assert item["y"].dtype == torch.int64 and item["y"].item() == (1 if image_id in (1, 2) else 0)
        assert item["scene"].item() == -1 and item["scene"].dtype == torch.int64
        assert item["boxes"].shape == (2, 4) and item["boxes"].dtype == torch.int64
        assert item["mask"].shape == (20, 20) and item["mask"].dtype == torch.bool
        # The mask is the union of annToMask's, resized by nearest neighbour.
        union = np.zeros((H, W), bool)
        for ann in index.imgToAnns[image_id]:
            union |= index.annToMask(ann).astype(bool)
        expected = np.asarray(Image.fromarray(union).resize((20, 20), Image.NEAREST))
        assert item["mask"].any() and np.array_equal(item["mask"].numpy(), expected)
    # Boxes: x scaled by 20/40, y by 20/20; the integer box holds the scaled one, x1 y1 exclusive.
    assert items[1]["boxes"].tolist() == [[1, 1, 7, 8], [0, 0, 0, 0]]  # 1.65 1.5 6.75 7.6
    assert items[2]["boxes"].tolist() == [[0, 0, 5, 10], [10, 5, 15, 15]]
    assert items[6]["boxes"].tolist() == [[0, 0, 10, 20], [0, 0, 0, 0]]
    assert items[10]["boxes"].tolist() == [[0, 0, 10, 15], [2, 0, 13, 15]]  # 2.5 -> 2, 12.5 -> 13
    assert np.array_equal(items[1]["mask"].numpy()[3:7, 3:6], np.ones((4, 3), bool))


def test_dataset_errors_name_what_is_missing(tmp_path):
    dataset_json = _coco_json(FILTER_CASES)
    annotation_file = _write_coco(tmp_path / "ann.json", dataset_json)
    with pytest.raises(FileNotFoundError, match=r"image folder .*images does not exist.*train2017\.zip"):
        coco.CocoObjectsDataset(tmp_path / "images", annotation_file, ["dog"], "train")
    _write_pngs(tmp_path / "images", dataset_json)
    (tmp_path / "images" / "000000000002.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 of the 2 train images are missing.*000000000002\.png"):
        coco.CocoObjectsDataset(tmp_path / "images", annotation_file, ["dog"], "train")
    with pytest.raises(ValueError, match="unknown split 'valid'"):
        coco.CocoObjectsDataset(tmp_path / "images", annotation_file, ["dog"], "valid")
    Image.new("RGB", (30, 20)).save(tmp_path / "images" / "000000000006.png")
    data = coco.CocoObjectsDataset(tmp_path / "images", annotation_file, ["cat"], "train", size=20)
    with pytest.raises(ValueError, match=r"is 30x20 pixels but the annotations say 40x20"):
        data[[r["image_id"] for r in data.records].index(6)]


def test_coco_splits_reads_the_data_home_layout(tmp_path):
    # 24 categories with images: 9 animals (a Similar set of 8 exists) and 15 other supercategories.
    categories = [{"id": i, "name": f"animal{i}", "supercategory": "animal"} for i in range(1, 10)]
    categories += [{"id": i, "name": f"thing{i}", "supercategory": f"group{i}"} for i in range(10, 25)]
    categories += [{"id": 25, "name": "rare", "supercategory": "group25"}]
    counts = {i: 4 for i in range(1, 25)} | {25: 1}  # 25 has the fewest images: not one of the 24
    order = [c for c, n in counts.items() for _ in range(n)]
    cases = {i + 1: ([(c, (2, 2, 6, 6), 0)], True) for i, c in enumerate(order)}
    dataset_json = _coco_json(cases, categories, 16, 16)
    home = tmp_path / "home"
    with pytest.raises(FileNotFoundError, match=r"annotations/instances_train2017\.json does not exist.*"
                                                r"images\.cocodataset\.org/annotations"):
        coco.coco_splits(None, {}, data_home=home)
    _write_coco(home / "coco" / "annotations" / "instances_train2017.json", dataset_json)
    _write_pngs(home / "coco" / "train2017", dataset_json)

    splits = coco.coco_splits(None, {"size": 8}, data_home=home)
    assert len(splits.train.classes) == 24 and 25 not in splits.train.classes
    assert [len(p) for p in (splits.train, splits.val, splits.test)] == [72, 0, 24]  # 4 -> 3 / 1; val 0.3 -> 0
    assert splits.train[0]["x"].shape == (3, 8, 8)
    assert splits.identity["sizes"] == [72, 0, 24] and "MS COCO train2017" in splits.source
    similar = coco.coco_splits(None, {"class_set": "similar", "size": 8}, data_home=home)
    assert len(similar.test.classes) == 8 and all(c <= 9 for c in similar.test.classes)
    dissimilar = coco.coco_splits(None, {"class_set": "dissimilar"}, data_home=home, seed=3)
    assert len(dissimilar.test.classes) == 8 and sum(1 for c in dissimilar.test.classes if c <= 9) <= 1
    assert coco.coco_splits(None, {"class_set": "dissimilar"}, data_home=home, seed=3).identity == dissimilar.identity
    with pytest.raises(ValueError, match="unknown class set 'alike'"):
        coco.coco_splits(None, {"class_set": "alike"}, data_home=home)


# -- CIFAR-10 -----------------------------------------------------------------------------------

def _write_fake_cifar(root: Path, per_batch: int = 4) -> dict[str, str]:
    """torchvision's python-pickle layout with ``per_batch`` images per batch; returns file -> MD5."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 "labels": rng.integers(0, 10, per_batch).tolist()}
        (folder / name).write_bytes(pickle.dumps(entry))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"class{i}" for i in range(10)]}))
    return {path.name: hashlib.md5(path.read_bytes()).hexdigest() for path in folder.iterdir()}


@pytest.fixture
def no_cifar_download(monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to download CIFAR-10")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", refuse)


def test_cifar10_missing_or_damaged_says_how_to_get_it(tmp_path, no_cifar_download):
    with pytest.raises(FileNotFoundError, match=r"cifar10/cifar-10-batches-py.*download=True.*"
                                                r"cifar-10-python\.tar\.gz"):
        cifar10.cifar10_splits(None, {}, data_home=tmp_path)
    _write_fake_cifar(tmp_path / "cifar10")  # right layout, but not the published files: MD5s differ
    with pytest.raises(FileNotFoundError, match="missing or damaged.*Dataset not found or corrupted"):
        cifar10.cifar10_splits(None, {}, data_home=tmp_path)


def _trust_fake_cifar(md5: dict[str, str], monkeypatch) -> None:
    """torchvision checks each file against the published MD5s; point those at the fake files."""
    from torchvision.datasets import CIFAR10

    monkeypatch.setattr(CIFAR10, "train_list", [[f"data_batch_{i}", md5[f"data_batch_{i}"]] for i in range(1, 6)])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(CIFAR10, "meta", dict(CIFAR10.meta, md5=md5["batches.meta"]))


def test_cifar10_items_and_validation_carve(tmp_path, monkeypatch, no_cifar_download):
    from torchvision.datasets import CIFAR10

    _trust_fake_cifar(_write_fake_cifar(tmp_path / "cifar10"), monkeypatch)
    splits = cifar10.cifar10_splits(None, {"n_val": 5}, data_home=tmp_path, seed=0)
    assert [len(p) for p in (splits.train, splits.val, splits.test)] == [15, 5, 4]
    source = CIFAR10(tmp_path / "cifar10", train=True)
    item = splits.val[0]
    assert set(item) == {"x", "y"} and item["x"].shape == (3, 32, 32) and item["y"].dtype == torch.int64
    assert splits.test.classes[:2] == ("airplane", "automobile") and len(splits.test.classes) == 10
    stacked = stack_items(splits.val, batch_size=2)  # COCO and CIFAR-10 have no tensors(): read in batches
    assert torch.equal(stacked["x"], torch.stack([splits.val[i]["x"] for i in range(5)]))
    assert stacked["y"].tolist() == [int(splits.val[i]["y"]) for i in range(5)]
    # The carve: train and val partition the 20 training images, the same for the same seed.
    seen = [(p[i]["x"] * 255).round().to(torch.uint8) for p in (splits.train, splits.val) for i in range(len(p))]
    originals = [torch.from_numpy(image).permute(2, 0, 1) for image in source.data]
    assert sorted(next(j for j, o in enumerate(originals) if torch.equal(o, s)) for s in seen) == list(range(20))
    again = cifar10.cifar10_splits(None, {"n_val": 5}, data_home=tmp_path, seed=0)
    assert torch.equal(again.val.images, splits.val.images)
    assert not torch.equal(cifar10.cifar10_splits(None, {"n_val": 5}, data_home=tmp_path, seed=1).val.images,
                           splits.val.images)
    resized = cifar10.cifar10_splits(None, {"n_val": 5, "size": 8}, data_home=tmp_path)
    assert resized.test[0]["x"].shape == (3, 8, 8) and 0 <= resized.test[0]["x"].min()
    with pytest.raises(ValueError, match="n_val must be between 1 and 19"):
        cifar10.cifar10_splits(None, {"n_val": 20}, data_home=tmp_path)


# -- the two ResNet-18s -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def places_state():
    from torchvision.models import resnet18

    torch.manual_seed(0)
    return resnet18(num_classes=365).state_dict()


def _places_checkpoint(state, **extra):
    return {"state_dict": {"module." + k: v for k, v in state.items()}, "epoch": 90, "arch": "resnet18",
            "best_prec1": 54.7, **extra}


def _assert_same_weights(model, state):
    loaded = model.state_dict()
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)


def test_places365_checkpoint_loads_bit_identically(tmp_path, places_state):
    path = tmp_path / "weights" / places365.PLACES365_FILE
    path.parent.mkdir()
    torch.save(_places_checkpoint(places_state), path)
    model = places365.load_places365_resnet18(data_home=tmp_path)  # the default place
    assert not model.training and model.fc.out_features == 365
    _assert_same_weights(model, places_state)
    _assert_same_weights(places365.load_places365_resnet18(path), places_state)


def test_places365_wrong_file_errors(tmp_path, places_state):
    from torchvision.models import resnet18

    with pytest.raises(FileNotFoundError, match=r"models_places365/resnet18_places365\.pth\.tar.*"
                                                r"weights/resnet18_places365\.pth\.tar"):
        places365.load_places365_resnet18(data_home=tmp_path)
    renamed = _places_checkpoint(places_state)
    renamed["state_dict"]["module.layer1.0.convX.weight"] = renamed["state_dict"].pop("module.layer1.0.conv1.weight")
    torch.save(renamed, tmp_path / "renamed.pth.tar")
    with pytest.raises(ValueError, match=r"missing \['layer1.0.conv1.weight'\], unexpected \['layer1.0.convX"):
        places365.load_places365_resnet18(tmp_path / "renamed.pth.tar")
    torch.save(_places_checkpoint(resnet18(num_classes=10).state_dict()), tmp_path / "ten.pth.tar")
    with pytest.raises(ValueError, match="fc has 10 outputs, Places365 has 365"):
        places365.load_places365_resnet18(tmp_path / "ten.pth.tar")
    reshaped = _places_checkpoint(places_state)
    reshaped["state_dict"]["module.conv1.weight"] = torch.zeros(64, 3, 3, 3)
    torch.save(reshaped, tmp_path / "reshaped.pth.tar")
    with pytest.raises(ValueError, match=r"conv1.weight is \(64, 3, 3, 3\), resnet18 needs \(64, 3, 7, 7\)"):
        places365.load_places365_resnet18(tmp_path / "reshaped.pth.tar")
    (tmp_path / "junk.pth.tar").write_bytes(b"\x00not a checkpoint" * 10)
    for trust in (False, True):
        with pytest.raises(ValueError, match="junk.pth.tar is not a readable PyTorch checkpoint"):
            places365.load_places365_resnet18(tmp_path / "junk.pth.tar", trust_pickle=trust)
    (tmp_path / "empty.pth.tar").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.pth.tar is not a readable PyTorch checkpoint"):
        places365.load_places365_resnet18(tmp_path / "empty.pth.tar")


def test_places365_pickled_objects_need_trust_pickle(tmp_path, places_state):
    path = tmp_path / "old.pth.tar"
    # Old training scripts saved their argparse options in the checkpoint, as here.
    torch.save(_places_checkpoint(places_state, args=argparse.Namespace(lr=0.1)), path)
    with pytest.raises(ValueError, match=r"pickled Python objects.*GLOBAL argparse.Namespace.*"
                                         r"runs code.*trust_pickle=True"):
        places365.load_places365_resnet18(path)
    with pytest.warns(UserWarning, match="weights_only=False"):
        model = places365.load_places365_resnet18(path, trust_pickle=True)
    _assert_same_weights(model, places_state)


@pytest.fixture
def imagenet_home(tmp_path, monkeypatch):
    """An empty torch.hub cache and DATA_HOME, and no downloading."""
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to download")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    return tmp_path


@pytest.fixture(scope="module")
def imagenet_state():
    from torchvision.models import resnet18

    torch.manual_seed(1)
    return resnet18().state_dict()


def _save_and_trust(state, path: Path, monkeypatch) -> None:
    """Write ``state`` to ``path`` and make its SHA-256 prefix the expected one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    monkeypatch.setattr(places365, "SHA256_PREFIX", hashlib.sha256(path.read_bytes()).hexdigest()[:8])


def test_imagenet_resnet18_missing_file_names_url_and_places(imagenet_home):
    with pytest.raises(FileNotFoundError, match=r"hub/checkpoints/resnet18-f37072fd\.pth.*"
                                                r"weights/resnet18-f37072fd\.pth.*download\.pytorch\.org/models/"
                                                r"resnet18-f37072fd\.pth.*download=True"):
        places365.load_imagenet_resnet18(data_home=imagenet_home)
    with pytest.raises(FileNotFoundError, match=r"elsewhere\.pth do not exist.*download\.pytorch\.org"):
        places365.load_imagenet_resnet18(imagenet_home / "elsewhere.pth", download=True)


def test_imagenet_resnet18_wrong_checksum_is_refused(imagenet_home, imagenet_state):
    path = imagenet_home / "weights" / places365.IMAGENET_FILE
    path.parent.mkdir()
    torch.save(imagenet_state, path)
    with pytest.raises(ValueError, match=r"fails its checksum.*expected f37072fd"):
        places365.load_imagenet_resnet18(data_home=imagenet_home)


def test_imagenet_resnet18_loads_from_hub_cache_then_data_home(imagenet_home, imagenet_state, monkeypatch):
    hub_file = imagenet_home / "hub" / "checkpoints" / places365.IMAGENET_FILE
    _save_and_trust(imagenet_state, hub_file, monkeypatch)
    (imagenet_home / "weights").mkdir()
    (imagenet_home / "weights" / places365.IMAGENET_FILE).write_bytes(b"not read: the hub cache comes first")
    model = places365.load_imagenet_resnet18(data_home=imagenet_home)
    assert not model.training and model.fc.out_features == 1000
    _assert_same_weights(model, imagenet_state)
    hub_file.rename(imagenet_home / "weights" / places365.IMAGENET_FILE)
    _assert_same_weights(places365.load_imagenet_resnet18(data_home=imagenet_home), imagenet_state)


def test_imagenet_resnet18_downloads_only_when_asked(imagenet_home, imagenet_state, monkeypatch):
    source = imagenet_home / "published.pth"
    _save_and_trust(imagenet_state, source, monkeypatch)
    calls = []

    def fake_download(url, dst, hash_prefix=None, **kwargs):
        calls.append((url, hash_prefix))
        Path(dst).write_bytes(source.read_bytes())

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    with pytest.raises(FileNotFoundError):
        places365.load_imagenet_resnet18(data_home=imagenet_home)
    assert calls == []
    _assert_same_weights(places365.load_imagenet_resnet18(data_home=imagenet_home, download=True), imagenet_state)
    assert calls == [(places365.IMAGENET_URL, places365.SHA256_PREFIX)]
    assert (imagenet_home / "hub" / "checkpoints" / places365.IMAGENET_FILE).is_file()


def test_normalise_imagenet():
    x = torch.rand(2, 3, 4, 4)
    out = places365.normalise_imagenet(x)
    assert torch.allclose(out[:, 1], (x[:, 1] - 0.456) / 0.224)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        places365.normalise_imagenet(x[0])


# -- fusion on CIFAR-10 (full): the recipes end to end on the fake files ---------------------------

def test_fusion_cifar10_fine_tunes_the_object_net_and_keeps_places365_frozen(
        tmp_path, monkeypatch, no_cifar_download, imagenet_state, places_state):
    import dataclasses

    from course_lib import zoo
    from course_lib.models import fusion_cifar10
    from course_lib.train.recipes import RECIPES

    _trust_fake_cifar(_write_fake_cifar(tmp_path / "cifar10", per_batch=6), monkeypatch)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # no cached weights from elsewhere
    _save_and_trust(imagenet_state, tmp_path / "weights" / places365.IMAGENET_FILE, monkeypatch)
    torch.save(_places_checkpoint(places_state), tmp_path / "weights" / places365.PLACES365_FILE)
    # The weight loaders read the default data home: the zoo makes it the build's own for the build.
    monkeypatch.setenv("COURSE_DATA_HOME", str(tmp_path / "elsewhere"))
    monkeypatch.setattr(fusion_cifar10, "INPUT_SIZE", 48)  # the paper's 224 px, smaller for speed
    for name, small in (("cifar10_object_net", dict(epochs=2, batch_size=8, n_val=6)),
                        ("fusion_cifar10", dict(epochs=3, batch_size=8, n_val=6))):
        recipe = zoo.get_recipe(name)
        monkeypatch.setitem(RECIPES, name, dataclasses.replace(recipe, full=dict(recipe.full, **small)))

    fused = zoo.build("fusion_cifar10", "full", tmp_path, device="cpu", progress=False)
    assert os.environ["COURSE_DATA_HOME"] == str(tmp_path / "elsewhere")  # as it was
    object_net = zoo.build("cifar10_object_net", "full", tmp_path, device="cpu", progress=False)
    assert not object_net.built_now  # the fusion build built it first, as its component
    # The object network trained every layer, from the ImageNet file's weights.
    tuned = object_net.model.stream.net.state_dict()
    assert not torch.equal(tuned["conv1.weight"], imagenet_state["conv1.weight"])
    assert not torch.equal(tuned["layer4.1.conv2.weight"], imagenet_state["layer4.1.conv2.weight"])
    assert tuned["conv1.weight"].shape == imagenet_state["conv1.weight"].shape
    assert object_net.model.fc.out_features == 10
    # The fusion classifier reads that network as it was trained and Places365 as published: both frozen.
    net = fused.model
    _assert_same_weights(net.object_stream.net, object_net.model.state_dict())
    _assert_same_weights(net.scene_stream.net, places_state)
    assert (net.fg.weight.shape, net.bg.weight.shape, net.joint.weight.shape) == ((10, 512), (10, 512), (10, 1024))
    assert {"test_acc_fg", "test_acc_bg", "test_acc_joint"} <= set(fused.metrics)
    assert fused.splits.test.classes == cifar10.CLASSES and fused.splits.test[0]["x"].shape == (3, 32, 32)
    logits = net.head("fg")(torch.rand(2, 3, 32, 32))  # pixels of CIFAR-10's size; the streams resize inside
    assert logits.shape == (2, 10)
    # quick has no CIFAR-10: its stand-in is the scenes at context 0, with the scenes' streams.
    quick = zoo.get_recipe("fusion_cifar10")
    assert quick.settings("quick")["context"] == 0.0
    assert quick.parts(quick.settings("quick")) == {"object_stream.net": "scenes_object_net",
                                                    "scene_stream.net": "scenes_scene_net"}
