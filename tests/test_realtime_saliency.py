"""Real-time saliency (chapter 11): the code's objective, fake selectors, training the masking model, object
crops and the Table 3 scoring, each on hand-made cases."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from course_lib.models.fusion import SmallResNet
from course_lib.models.masking import FeaturePyramid, MaskedBlackBox, MaskingModel
from course_lib.saliency.code_objective import PublishedCodeObjective, border_energy, logit_margin
from course_lib.saliency.evidence import SaliencyObjective, alternative_images
from course_lib.saliency.scoring import ground_truth_metric, metric_boxes, pixel_auc, saliency_table
from course_lib.train import Engine, make_optimizer
from course_lib.train.batches.object_crops import ObjectCrops, crop_around
from course_lib.train.batch import Batch
from course_lib.train.metrics import MaskQuality
from course_lib.train.objectives import MaskingObjective
from course_lib.train.objectives.masking import draw_selectors, other_classes


class Constant(nn.Module):
    """A classifier that ignores its input: fixed logits for every image."""

    def __init__(self, logits):
        super().__init__()
        self.register_buffer("logits", torch.tensor(logits, dtype=torch.float32))

    def forward(self, x):
        return self.logits.expand(len(x), -1)


def test_the_codes_terms_equal_hand_computed_values():
    logits = torch.tensor([[3.0, 1.0, 0.5], [0.0, 2.0, 4.0]])
    assert logit_margin(logits, torch.tensor([0, 1])).tolist() == [2.0, -2.0]
    mask = torch.tensor([[[1.0, 0.0], [0.5, 0.0]]])
    # borders of a 2x2 mask: rows 0 and 1, columns 0 and 1 -> every value counted twice
    assert border_energy(mask).item() == pytest.approx(2 * (1 + 0.25))
    objective = PublishedCodeObjective()
    x = torch.rand(1, 3, 2, 2)
    terms = objective.terms(Constant([[3.0, 1.0, 0.5]]), x, mask, torch.tensor([0]), torch.Generator())
    assert terms["preserve"].item() == 0.0            # class 0 wins by 2 > margin 1
    assert terms["destroy"].item() == pytest.approx(2.0 + 5.0)
    area = 8 * ((mask + 0.0005) ** 0.3).mean()
    smooth = ((1 - 0.5) ** 2 + 0 + 1 + 0.25 + 0.3 * 2.5) / 2
    assert terms["tv"].item() == pytest.approx(smooth)
    assert terms["loss"].item() == pytest.approx(7.0 + area.item() + 0.005 * smooth, rel=1e-5)


def test_the_codes_colours_stay_in_their_range():
    x = torch.zeros(400, 3, 4, 4)
    alt = alternative_images(x, torch.Generator().manual_seed(0), noise=0.0, colours=(0.335, 0.665))
    flat = alt[alt.flatten(1).amax(1) > 0]  # the blurred ones are all zero here
    assert len(flat) > 100 and flat.min() >= 0.335 and flat.max() <= 0.665


def test_fake_selectors_are_other_classes_at_the_asked_rate():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 5, (4000,), generator=g)
    assert (other_classes(y, 5, g) != y).all()
    selectors, real = draw_selectors(y, 5, 0.3, g)
    assert (selectors[real] == y[real]).all() and (selectors[~real] != y[~real]).all()
    assert abs((~real).float().mean().item() - 0.3) < 0.03


class ToyMasking(nn.Module):
    """A free mask (logits) per class: the smallest model the masking objective can train."""

    def __init__(self, classes: int = 2, size: int = 8):
        super().__init__()
        self.classes = classes
        self.logits = nn.Parameter(torch.zeros(classes, size, size))

    def forward(self, x, selector):
        return torch.sigmoid(self.logits[selector])


class Pair(nn.Module):
    def __init__(self, masking, black_box):
        super().__init__()
        self.masking, self.black_box = masking, black_box


class Brightness(nn.Module):
    """Class 1's logit grows with the image's mean brightness; class 0's is fixed."""

    def forward(self, x):
        bright = 20 * (x.mean((1, 2, 3)) - 0.75)
        return torch.stack([torch.zeros_like(bright), bright], 1)


def test_a_fake_selector_with_the_area_term_alone_drives_its_mask_to_zero():
    # White images of class 0; class 1 is only ever a fake selector. For class 1 the full objective
    # would keep the mask (the kept white image is what convinces the black box of class 1); the area
    # term alone, which fake selectors get, removes it.
    model = Pair(ToyMasking(), Brightness())
    objective = MaskingObjective(SaliencyObjective(l1=0.0, l2=1.0), fake_rate=0.5, seed=0)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.1)
    batch = Batch(x=torch.ones(16, 3, 8, 8), y=torch.zeros(16, dtype=torch.int64))
    for _ in range(150):
        loss, _ = objective(model, batch)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    fake_area = torch.sigmoid(model.masking.logits[1]).mean().item()
    assert fake_area < 0.02


class Scenes(Dataset):
    def __init__(self, n=12, size=32):
        g = torch.Generator().manual_seed(0)
        self.x = torch.rand(n, 3, size, size, generator=g)
        self.y = torch.randint(0, 4, (n,), generator=g)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i], "boxes": torch.tensor([[4, 4, 20, 20], [0, 0, 0, 0]])}


def test_training_moves_the_decoder_and_leaves_encoder_and_black_box_bit_identical():
    torch.manual_seed(0)
    pair = MaskedBlackBox(MaskingModel(FeaturePyramid(SmallResNet(4, 8)), 4), SmallResNet(4, 8))
    frozen = {k: v.clone() for k, v in pair.state_dict().items()
              if k.startswith(("masking.encoder", "black_box"))}
    decoder = pair.masking.head.weight.clone()
    engine = Engine(pair, make_optimizer("Adam", pair.parameters(), 1e-2), MaskingObjective(),
                    metrics=MaskQuality(), monitor="val_loss", batch_size=4, progress=False)
    history = engine.fit(Scenes(), 2, val=Scenes(8))
    after = pair.state_dict()
    assert all(torch.equal(after[k], v) for k, v in frozen.items())  # BN statistics included
    assert not torch.equal(pair.masking.head.weight, decoder)
    assert {"val_loss", "val_area", "val_area_fake", "val_loc_error"} <= set(history)
    assert all(p.grad is None for p in pair.black_box.parameters())


def test_object_crops_contain_the_whole_object():
    # The object's left column, right column and bottom row are marked in channels 0, 1 and 2: a crop
    # that cut any side of the object would lose that side's channel.
    image = torch.zeros(3, 32, 32)
    image[0, 10:18, 12] = image[1, 10:18, 19] = image[2, 17, 12:20] = 1.0
    sides = []
    for seed in range(30):
        crop = crop_around(image, [12, 10, 20, 18], torch.Generator().manual_seed(seed))
        assert crop.shape == image.shape
        sides.append(crop.flatten(1).amax(1))
    assert torch.stack(sides).min() > 0.4
    with pytest.raises(ValueError, match="boxes"):
        ObjectCrops(1.0)(None, {"x": torch.rand(2, 3, 8, 8), "y": torch.zeros(2, dtype=torch.int64)})


def test_scoring_rules_match_hand_computed_cases():
    maps = torch.zeros(2, 8, 8)
    maps[0, 2:4, 3:6] = 1.0
    boxes, empty = metric_boxes(maps)
    assert boxes.tolist() == [[3, 2, 6, 4], [0, 0, 8, 8]] and empty.tolist() == [False, True]
    truth = maps.bool().clone()
    truth[1, 0, 0] = True
    auc = pixel_auc(torch.stack([maps[0], -maps[0]]), torch.stack([truth[0], truth[0]]))
    assert auc.tolist() == [1.0, 0.0]
    # constant probabilities: the metric is log(max(area, 0.05)) - log(p), averaged over each image's boxes
    model = Constant([[math.log(0.5), math.log(0.5)]])
    gt = torch.tensor([[[0, 0, 8, 8], [0, 0, 1, 1]], [[0, 0, 4, 4], [0, 0, 0, 0]]])
    got = ground_truth_metric(model, torch.rand(2, 3, 8, 8), gt, torch.tensor([0, 1]))
    expected = [(math.log(1.0) + math.log(0.05)) / 2 - math.log(0.5), math.log(0.25) - math.log(0.5)]
    assert got.tolist() == pytest.approx(expected, rel=1e-5)


def test_the_table_scores_masks_as_they_are_and_other_maps_against_their_peak():
    model = Constant([[0.0, 0.0]])
    x, y = torch.rand(2, 3, 8, 8), torch.tensor([0, 1])
    truth = torch.tensor([[[2, 2, 6, 6], [0, 0, 0, 0]]] * 2)
    objects = torch.zeros(2, 8, 8, dtype=torch.bool)
    objects[:, 2:6, 2:6] = True

    def weak(model, x, y):  # right place, low values: a miss as a mask, a hit once divided by its peak
        m = torch.zeros(len(x), 8, 8)
        m[:, 2:6, 2:6] = 0.2
        return m

    rows, _ = saliency_table(model, x, y, truth, objects, {"as mask": weak, "as map": weak}, masks={"as mask"})
    by_name = {r["method"]: r for r in rows}
    assert by_name["as mask"]["loc_error"] == 100.0 and by_name["as map"]["loc_error"] == 0.0
    assert by_name["as map"]["pixel_auc"] == 1.0
    assert by_name["max box"]["loc_error"] == 100.0 and by_name["ground-truth boxes"]["loc_error"] == 0.0
    assert np.isnan(by_name["centre box"]["pixel_auc"])
    seen = []

    def per_image(model, x, y):  # records its batches; each map carries its own image's class
        seen.append(len(x))
        m = torch.zeros(len(x), 8, 8)
        m[:, 0, 0] = y.float() + 1
        return m

    _, maps = saliency_table(model, x, y, truth, objects, {"per image": per_image}, batch_size=1)
    assert seen == [1, 1] and maps["per image"][:, 0, 0].tolist() == [1.0, 2.0]  # in order, one at a time


def test_the_paper_objective_offers_its_area_term_alone():
    mask = torch.full((2, 4, 4), 0.5)
    assert SaliencyObjective(l2=3.0).area_loss(mask).tolist() == [1.5, 1.5]


def test_mask_quality_reads_the_black_box_on_the_losses_own_edited_images():
    model = Pair(ToyMasking(classes=2, size=8), Constant([[2.0, 0.0]]))  # class 0 always wins
    x = torch.rand(4, 3, 8, 8)
    boxes = torch.tensor([[[0, 0, 8, 8], [0, 0, 0, 0]]] * 4)  # the whole image: a 0.5 mask's box matches it
    values = MaskQuality(PublishedCodeObjective())(model, Batch(x=x, y=torch.tensor([0, 0, 1, 1]),
                                                                extras={"boxes": boxes}))
    assert values["preserved_acc"] == values["destroyed_acc"] == 50.0  # right for the two class-0 images only
    assert values["area"] == values["area_fake"] == 0.5  # untrained logits 0: every mask is 0.5
    assert values["loc_error"] == 0.0
