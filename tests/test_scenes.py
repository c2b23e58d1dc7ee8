"""Objects in context: exact boxes, the context knob, box blur, class sets, cache, datasets, bad input."""
from __future__ import annotations

import math

import pytest
import torch

from course_lib.data import scenes
from course_lib.io import atomic_torch_save
from course_lib.data.scenes import (CLASSES, SCENE_TYPES, SUPERCATEGORIES, SceneOnlyDataset, ScenesDataset,
                                    blur_boxes, class_set, draw_backgrounds, draw_scenes, load_scenes,
                                    scale_sigma, scene_only_splits, scenes_splits, supercategory_of)


@pytest.fixture(scope="module")
def draw64():
    return draw_scenes(300, seed=0, size=64)


def _in_own_scenes(draw) -> torch.Tensor:
    """Per image: is its scene one of the two its class's super-category owns?"""
    groups = list(SUPERCATEGORIES)
    sup = torch.tensor([groups.index(supercategory_of(CLASSES[c])) for c in draw["labels"].tolist()])
    return draw["scenes"] // 2 == sup


def test_tables_fit_together():
    assert len(CLASSES) == 12 and len(set(CLASSES)) == 12 and len(SCENE_TYPES) == 8
    assert len(SUPERCATEGORIES) == 4 and all(len(members) == 3 for members in SUPERCATEGORIES.values())
    assert sorted(c for members in SUPERCATEGORIES.values() for c in members) == sorted(CLASSES)
    assert supercategory_of("sheep") == "animal"


@pytest.mark.parametrize("size", [16, 64])
def test_boxes_are_the_tightest_around_each_instance(size, draw64):
    draw = draw64 if size == 64 else draw_scenes(300, seed=3, size=size)
    assert draw["images"].shape == (300, 3, size, size) and draw["images"].dtype == torch.float32
    assert 0 <= draw["images"].min() and draw["images"].max() <= 1
    assert torch.equal(draw["masks"], draw["instance_masks"].any(1))
    for boxes, inst in zip(draw["boxes"], draw["instance_masks"]):
        assert boxes.dtype == torch.int64 and boxes.shape[1] == 4 and len(boxes) in (1, 2)
        assert not inst[len(boxes):].any()
        for box, mask in zip(boxes, inst):
            ys, xs = mask.nonzero(as_tuple=True)
            assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        if len(boxes) == 2:
            assert not (inst[0] & inst[1]).any()  # instances never overlap, so each mask is what it drew


def test_masks_are_exactly_the_pixels_the_objects_paint():
    g = torch.Generator().manual_seed(0)
    canvas = torch.full((60, 3, 32, 32), float("nan"))  # any pixel an object paints stops being NaN
    labels, counts = torch.arange(60) % 12, 1 + torch.arange(60) % 2
    masks = scenes._draw_objects(canvas, labels, counts, g)
    assert torch.equal(~canvas.isnan().any(1), masks.any(1))
    assert torch.equal(masks.flatten(2).any(2), torch.arange(2) < counts[:, None])


def test_every_instance_paints_a_pixel_even_when_tiny():
    g = torch.Generator().manual_seed(1)
    n = 6000  # at 16 px, two instances are ~4 px wide; thin silhouettes would now and then miss every pixel centre
    masks = scenes._draw_objects(torch.zeros(n, 3, 16, 16), torch.arange(n) % 12, torch.full((n,), 2), g)
    assert masks.flatten(2).any(2).all()


def test_each_box_covers_at_most_half_the_image_and_one_or_two_instances_occur(draw64):
    for size, draw in ((64, draw64), (16, draw_scenes(400, seed=1, size=16))):
        areas = torch.cat([(b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) for b in draw["boxes"]])
        assert areas.max() <= 0.5 * size * size
        counts = torch.tensor([len(b) for b in draw["boxes"]])
        assert 0.35 < (counts == 2).float().mean() < 0.65 and set(counts.tolist()) == {1, 2}


def test_deterministic_per_seed():
    a, b, c = draw_scenes(40, seed=5, size=32), draw_scenes(40, seed=5, size=32), draw_scenes(40, seed=6, size=32)
    for key in ("images", "labels", "scenes", "masks", "instance_masks"):
        assert torch.equal(a[key], b[key])
    assert all(torch.equal(x, y) for x, y in zip(a["boxes"], b["boxes"]))
    assert not torch.equal(a["images"], c["images"]) and not torch.equal(a["labels"], c["labels"])


@pytest.mark.parametrize("context", [0.9, 0.3])
def test_context_is_the_share_of_images_in_their_own_scenes(context):
    n = 4000
    draw = draw_scenes(n, seed=2, context=context, size=16)
    expected = context + (1 - context) * 2 / len(SCENE_TYPES)  # a uniform scene lands in its own 2 of 8 by chance
    observed = _in_own_scenes(draw).float().mean().item()
    assert abs(observed - expected) < 4 * math.sqrt(expected * (1 - expected) / n)


def test_without_context_the_scene_is_independent_of_the_class():
    from scipy.stats import chi2_contingency

    def p_value(context):
        draw = draw_scenes(4000, seed=4, context=context, size=16)
        table = torch.zeros(len(CLASSES), len(SCENE_TYPES))
        table.index_put_((draw["labels"], draw["scenes"]), torch.ones(4000), accumulate=True)
        return chi2_contingency(table.numpy()).pvalue

    assert p_value(0.0) > 0.001
    assert p_value(0.2) < 1e-6  # the test does see a weak context


def test_within_a_supercategory_the_classes_prefer_its_scenes_differently():
    draw = draw_scenes(3000, seed=7, context=1.0, size=16, classes=SUPERCATEGORIES["animal"])
    first = [(draw["scenes"][draw["labels"] == CLASSES.index(c)] == 0).float().mean().item()
             for c in SUPERCATEGORIES["animal"]]
    assert first == sorted(first, reverse=True) and first[0] - first[2] > 0.35
    assert set(draw["scenes"].tolist()) == {0, 1}


def test_classes_restrict_the_draw_but_labels_stay_global():
    draw = draw_scenes(200, seed=0, size=16, classes=["boat", 0])
    assert set(draw["labels"].tolist()) == {CLASSES.index("boat"), 0}


def test_blur_changes_only_the_boxes_and_more_with_a_larger_sigma(draw64):
    images, boxes = draw64["images"][:16], draw64["boxes"][:16]
    inside = torch.zeros(16, 64, 64, dtype=torch.bool)
    for i, b in enumerate(boxes):
        for x0, y0, x1, y1 in b.tolist():
            inside[i, y0:y1, x0:x1] = True
    inside = inside[:, None].expand_as(images)
    changes = []
    for sigma in (1.0, 3.0, 8.0):
        blurred = blur_boxes(images, boxes, sigma)
        assert torch.equal(blurred[~inside], images[~inside])
        changes.append((blurred - images)[inside].abs().mean().item())
    assert 0 < changes[0] < changes[1] < changes[2]
    same = blur_boxes(images, boxes, 0)
    assert torch.equal(same, images) and same is not images
    padded = scenes._padded_boxes(boxes)
    assert torch.equal(blur_boxes(images, padded, 3.0), blur_boxes(images, boxes, 3.0))
    only_padding = torch.zeros(16, 2, 4, dtype=torch.int64)
    assert torch.equal(blur_boxes(images, only_padding, 3.0), images)
    assert blur_boxes(images, boxes, 500.0).isfinite().all()  # the kernel is capped to the image size


@pytest.mark.parametrize("sigma", [1.0, 4.0, 12.9])
def test_the_separable_blur_inside_the_boxes_is_torchvisions_two_dimensional_gaussian(draw64, sigma):
    from torchvision.transforms.functional import gaussian_blur

    images, boxes = draw64["images"][:8], draw64["boxes"][:8]
    kernel = min(2 * math.ceil(3 * sigma) + 1, 127)
    whole = gaussian_blur(images, [kernel, kernel], [sigma, sigma])
    blurred = blur_boxes(images, boxes, sigma)
    inside = blurred != images
    assert inside.any()
    assert torch.allclose(blurred[inside], whole[inside], atol=1e-5)


def test_scale_sigma_is_relative_to_224_pixels():
    assert scale_sigma(45, 224) == 45 and scale_sigma(45, 64) == pytest.approx(45 * 64 / 224)


def test_class_sets_are_built_as_defined():
    assert class_set("all") == CLASSES
    similar = class_set("similar")
    assert similar == SUPERCATEGORIES["animal"] and class_set("similar", "sports") == SUPERCATEGORIES["sports"]
    made = {class_set("dissimilar", seed=s) for s in range(10)}
    assert len(made) > 1 and class_set("dissimilar", seed=3) == class_set("dissimilar", seed=3)
    for dissimilar in made:
        assert len(dissimilar) == len(similar) and len({supercategory_of(c) for c in dissimilar}) == len(dissimilar)


@pytest.mark.parametrize("call, message", [
    (lambda: draw_scenes(10, classes=["sheep", "unicorn"]), "unknown class 'unicorn'; valid classes: sheep, horse"),
    (lambda: draw_scenes(10, context=1.5), r"context=1.5 .* \[0, 1\]"),
    (lambda: draw_scenes(10, context=-0.1), r"context=-0.1 .* \[0, 1\]"),
    (lambda: draw_scenes(0), "n=0: draw at least one image"),
    (lambda: draw_scenes(10, size=8), "size=8: images must be at least 16"),
    (lambda: class_set("similar", "fruit"), "unknown super-category 'fruit'; valid ones: animal, vehicle"),
    (lambda: class_set("odd"), "unknown class set 'odd'; valid sets: all, similar, dissimilar"),
    (lambda: class_set("dissimilar", "animal"), "only applies to the 'similar' set"),
    (lambda: supercategory_of("unicorn"), "unknown class 'unicorn'"),
    (lambda: blur_boxes(torch.zeros(1, 3, 32, 32), [torch.tensor([[4, 4, 40, 20]])], 2.0),
     r"box \(4, 4, 40, 20\) of image 0 .* width 32 and height 32"),
    (lambda: blur_boxes(torch.zeros(1, 3, 32, 32), [torch.tensor([[9, 4, 9, 20]])], 2.0),
     r"box \(9, 4, 9, 20\) of image 0 is not a box inside"),
    (lambda: blur_boxes(torch.zeros(1, 3, 32, 32), [torch.tensor([[4, 4, 9, 20]])], -1.0),
     "sigma=-1.0: the blur's std must be finite and >= 0"),
    (lambda: blur_boxes(torch.zeros(2, 3, 32, 32), [torch.tensor([[4, 4, 9, 20]])], 1.0),
     r"boxes of shape \(1, 1, 4\) do not fit 2 images"),
    (lambda: blur_boxes(torch.zeros(1, 3, 32, 32), [torch.tensor([4.5, 4, 9, 20])], 1.0),
     r"the boxes of image 0 have shape \(4,\)"),
    (lambda: blur_boxes(torch.zeros(1, 3, 32, 32), [torch.tensor([[4.5, 4, 9, 20]])], 1.0), "not whole numbers"),
])
def test_bad_input_is_a_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_cache_is_written_once_and_read_back(tmp_path, monkeypatch):
    first = load_scenes(30, seed=1, context=0.5, classes=class_set("similar"), size=32, data_home=tmp_path)
    files = list((tmp_path / "scenes").glob("*.pt"))
    assert len(files) == 1
    def refuse(*args, **kwargs):
        raise AssertionError("drew again")

    monkeypatch.setattr(scenes, "draw_scenes", refuse)
    again = load_scenes(30, seed=1, context=0.5, classes=class_set("similar"), size=32, data_home=tmp_path)
    for key in ("images", "labels", "scenes", "masks", "instance_masks"):
        assert torch.equal(first[key], again[key]) and first[key].dtype == again[key].dtype
    assert all(torch.equal(x, y) for x, y in zip(first["boxes"], again["boxes"]))
    with pytest.raises(AssertionError, match="drew again"):  # other parameters: another file
        load_scenes(30, seed=2, context=0.5, classes=class_set("similar"), size=32, data_home=tmp_path)


def test_a_cached_draw_is_read_once_but_every_caller_gets_its_own_tensors(tmp_path, monkeypatch):
    kwargs = dict(seed=1, context=0.5, classes=class_set("similar"), size=32, data_home=tmp_path)
    first = load_scenes(12, **kwargs)
    reads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: reads.append(a[0]) or real_load(*a, **k))
    second, third = load_scenes(12, **kwargs), load_scenes(12, **kwargs)
    assert len(reads) <= 1  # the second call reads the file, the third the process's copy
    second["images"].zero_()
    second["masks"].fill_(True)
    second["boxes"][0].fill_(-1)
    for key in ("images", "masks"):  # writing in place into one caller's data changes no other's
        assert torch.equal(third[key], first[key])
    assert torch.equal(third["boxes"][0], first["boxes"][0])
    path = next((tmp_path / "scenes").glob("*.pt"))
    stored = real_load(path, weights_only=True)
    stored["labels"] = stored["labels"].flip(0)
    size = path.stat().st_size
    atomic_torch_save(path, stored)  # replaced whole, as the kit writes (same size): read again
    assert path.stat().st_size == size
    assert torch.equal(load_scenes(12, **kwargs)["labels"], first["labels"].flip(0))


def test_dataset_items_are_dicts_with_padded_boxes(draw64):
    dataset = ScenesDataset(draw64, class_set("similar", "sports"))  # global labels 9-11, set labels 0-2
    keep = [i for i, c in enumerate(draw64["labels"].tolist()) if CLASSES[c] in dataset.classes]
    assert len(dataset) == len(keep) and dataset.classes == SUPERCATEGORIES["sports"]
    for i in range(len(dataset)):
        item, j = dataset[i], keep[i]
        assert set(item) == {"x", "y", "scene", "boxes", "mask"}
        assert item["x"].shape == (3, 64, 64) and item["mask"].shape == (64, 64) and item["mask"].dtype == torch.bool
        assert item["y"].dtype == torch.int64 and 0 <= item["y"] < 3
        assert dataset.classes[item["y"]] == CLASSES[draw64["labels"][j]]
        k = len(draw64["boxes"][j])
        assert item["boxes"].shape == (2, 4) and torch.equal(item["boxes"][:k], draw64["boxes"][j])
        assert not item["boxes"][k:].any()
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=8)))
    assert batch["boxes"].shape == (8, 2, 4)
    whole = dataset.tensors()
    assert whole["x"].shape == (len(dataset), 3, 64, 64) and set(whole["y"].tolist()) <= {0, 1, 2}


def test_zoo_data_sources(tmp_path):
    settings = {"class_set": "dissimilar", "context": 0.8, "n_train": 24, "n_val": 12, "n_test": 12, "size": 32}
    splits = scenes_splits("quick", settings, data_home=tmp_path, seed=0)
    assert [len(part) for part in (splits.train, splits.val, splits.test)] == [24, 12, 12]
    assert splits.identity["classes"] == list(class_set("dissimilar")) and splits.identity["context"] == 0.8
    assert "dissimilar" in splits.source
    assert not torch.equal(splits.val.draw["images"], splits.test.draw["images"])  # each split its own seed
    assert splits.train[0]["x"].shape == (3, 32, 32) and 0 <= splits.train[0]["y"] < 3
    other = scenes_splits("quick", settings, data_home=tmp_path, seed=1)
    assert not torch.equal(other.train.draw["images"], splits.train.draw["images"])
    backgrounds = scene_only_splits("quick", {"n_train": 16, "n_val": 8, "n_test": 8, "size": 32}, tmp_path)
    assert isinstance(backgrounds.train, SceneOnlyDataset) and len(backgrounds.test) == 8
    assert set(backgrounds.train[0]) == {"x", "y"} and backgrounds.train[0]["x"].shape == (3, 32, 32)


def test_scene_types_are_learnable_from_the_backgrounds_alone():
    from sklearn.linear_model import LogisticRegression

    def features(draw):  # 8 x 8 average colours: 192 numbers per image
        return torch.nn.functional.adaptive_avg_pool2d(draw["images"], 8).flatten(1).numpy(), draw["scenes"].numpy()

    x, y = features(draw_backgrounds(1600, seed=0, size=32))
    x_test, y_test = features(draw_backgrounds(800, seed=1, size=32))
    model = LogisticRegression(max_iter=500).fit(x, y)
    assert model.score(x_test, y_test) > 0.9
