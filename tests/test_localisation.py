"""Boxes from maps, IoU, localisation error and the saliency metric, on cases worked out by hand."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from course_lib.saliency.localisation import (box_from_map, box_iou, centre_box, localisation_error, max_box,
                                              normalise_map, saliency_metric)


def test_box_iou_of_hand_computed_boxes():
    # (0,0)-(4,4): 16 px; (2,2)-(6,6): 16 px; overlap (2,2)-(4,4): 4 px -> 4 / 28.
    assert box_iou([0, 0, 4, 4], [2, 2, 6, 6]).item() == pytest.approx(4 / 28)
    assert box_iou([0, 0, 4, 4], [0, 0, 4, 4]).item() == 1.0
    assert box_iou([0, 0, 4, 4], [4, 0, 8, 4]).item() == 0.0  # touching at x = 4: x1 is exclusive
    pairs = box_iou(torch.tensor([[0, 0, 4, 4], [0, 0, 2, 2]]), torch.tensor([[0, 0, 4, 2]]))
    assert pairs.shape == (2, 1)
    assert pairs[:, 0].tolist() == pytest.approx([8 / 16, 4 / 8])
    assert box_iou([0, 0, 0, 0], [0, 0, 4, 4]).item() == 0.0  # an empty box localises nothing


def test_box_from_map_is_the_tightest_box_with_exclusive_ends():
    saliency = torch.zeros(8, 10)
    saliency[2, 3] = 0.5   # at the threshold: counts
    saliency[5, 7] = 0.9
    saliency[6, 1] = 0.49  # below: does not
    assert box_from_map(saliency).tolist() == [3, 2, 8, 6]
    assert box_from_map(saliency, threshold=0.0).tolist() == [0, 0, 10, 8]
    assert box_from_map(torch.zeros(8, 10)).tolist() == [0, 0, 0, 0]


def test_localisation_error_counts_iou_above_one_half_with_any_ground_truth_box():
    maps = torch.zeros(3, 8, 8)
    maps[0, 0:4, 0:4] = 1  # box (0,0,4,4): exactly the first truth box
    maps[1, 0:4, 0:3] = 1  # box (0,0,3,4): IoU 12/16 with (0,0,4,4)
    maps[2, 0:2, 0:2] = 1  # box (0,0,2,2): IoU 4/16 = 0.25 with the truth: a miss
    truth = torch.tensor([[[0, 0, 4, 4], [0, 0, 0, 0]],
                          [[6, 6, 8, 8], [0, 0, 4, 4]],  # the second of two truth boxes is matched
                          [[0, 0, 4, 4], [0, 0, 0, 0]]])
    assert localisation_error(maps, truth) == pytest.approx(100 / 3)


def test_the_baseline_boxes_are_what_they_promise():
    assert max_box(48, 64).tolist() == [0, 0, 64, 48]
    x0, y0, x1, y1 = centre_box(64, 64).tolist()
    assert (x1 - x0) * (y1 - y0) / 64 ** 2 == pytest.approx(0.5, abs=0.02)
    assert abs(x0 + x1 - 64) <= 1 and abs(y0 + y1 - 64) <= 1  # centred (to the pixel: 64 - 45 is odd)
    x0, y0, x1, y1 = centre_box(100, 200).tolist()
    assert (x1 - x0) / (y1 - y0) == pytest.approx(2, abs=0.03)


class Fixed(nn.Module):
    """Logits from the mean of the red channel: class 1's logit is 10 * mean(red), class 0's is 0."""

    def forward(self, x):
        red = x[:, 0].mean((1, 2))
        return torch.stack([torch.zeros_like(red), 10 * red], 1)


def test_saliency_metric_of_hand_computed_crops():
    x = torch.zeros(2, 3, 10, 10)
    x[:, 0, :5, :5] = 1.0  # a red square in the top-left quarter
    boxes = torch.tensor([[0, 0, 5, 5],     # the red square: area 0.25, crop all red: p(1) = sigmoid(10)
                          [0, 0, 10, 10]])  # the whole image: area 1, mean red 0.25: p(1) = sigmoid(2.5)
    values = saliency_metric(Fixed(), x, boxes, torch.tensor([1, 1]))
    sigmoid = lambda t: 1 / (1 + math.exp(-t))  # noqa: E731
    assert values.tolist() == pytest.approx([math.log(0.25) - math.log(sigmoid(10)),
                                            math.log(1.0) - math.log(sigmoid(2.5))], rel=1e-4)
    tiny = saliency_metric(Fixed(), x, torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1]]), torch.tensor([1, 0]))
    assert tiny[0].item() == pytest.approx(math.log(0.05) - math.log(sigmoid(10)), rel=1e-4)  # area floored


def test_the_metric_leaves_the_model_in_training_mode_when_it_was():
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(12, 2)).train()
    saliency_metric(model, torch.rand(2, 3, 2, 2), torch.tensor([[0, 0, 2, 2], [0, 0, 1, 1]]), [0, 1])
    assert model.training


@pytest.mark.parametrize("call, message", [
    (lambda: box_from_map(torch.zeros(2, 8, 8)), "one \\(H, W\\) map"),
    (lambda: box_from_map(torch.zeros(8, 8), threshold=1.5), "threshold=1.5 must lie in \\[0, 1\\]"),
    (lambda: box_iou([0, 0, 4], [0, 0, 4, 4]), "as \\(x0, y0, x1, y1\\)"),
    (lambda: saliency_metric(Fixed(), torch.rand(1, 3, 8, 8), torch.tensor([[0, 0, 9, 8]]), [0]),
     "not a non-empty box inside the 8x8 image"),
    (lambda: saliency_metric(Fixed(), torch.rand(1, 3, 8, 8), torch.tensor([[4, 0, 4, 8]]), [0]),
     "not a non-empty box"),
    (lambda: saliency_metric(Fixed(), torch.rand(1, 3, 8, 8), torch.tensor([[0, 0, 8, 8]]), [2]),
     "class indices must lie in \\[0, 1\\]"),
    (lambda: saliency_metric(Fixed(), torch.rand(2, 3, 8, 8), torch.tensor([[0, 0, 8, 8]]), [0, 0]),
     "one box per image"),
    (lambda: localisation_error(torch.zeros(8, 8), [torch.zeros(1, 4)]), "maps must be \\(B, H, W\\)"),
])
def test_bad_input_is_a_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_normalise_map_scales_each_map_by_its_maximum():
    maps = torch.tensor([[[0.0, 2.0], [1.0, 4.0]], [[0.0, 0.0], [0.0, 0.0]]])
    assert normalise_map(maps).tolist() == [[[0.0, 0.5], [0.25, 1.0]], [[0.0, 0.0], [0.0, 0.0]]]
