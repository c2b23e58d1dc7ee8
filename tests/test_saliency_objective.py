"""Dabkowski and Gal's objective (TV, AV, evidence removal) and the iterative masks built on it."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from course_lib.saliency.evidence import (SaliencyObjective, alternative_images, average_area, blurred,
                                          remove_evidence, total_variation)
from course_lib.saliency.iterative_mask import IterativeMask


def test_total_variation_and_area_equal_hand_computed_values():
    mask = torch.tensor([[[0.0, 1.0, 1.0],
                          [0.0, 0.5, 1.0]]])
    # horizontal: (0-1)^2 + (1-1)^2 + (0-0.5)^2 + (0.5-1)^2 = 1.5; vertical: 0 + 0.25 + 0 = 0.25
    assert total_variation(mask).tolist() == pytest.approx([1.75])
    assert average_area(mask).tolist() == pytest.approx([3.5 / 6])


def test_evidence_removal_keeps_the_image_where_the_mask_is_one_and_replaces_it_where_zero():
    x, alternative = torch.rand(2, 3, 6, 6), torch.rand(2, 3, 6, 6)
    mask = torch.zeros(2, 6, 6)
    mask[:, :3] = 1
    out = remove_evidence(x, mask, alternative)
    assert torch.equal(out[:, :, :3], x[:, :, :3]) and torch.equal(out[:, :, 3:], alternative[:, :, 3:])
    half = remove_evidence(x, torch.full((2, 6, 6), 0.5), alternative)
    assert torch.allclose(half, (x + alternative) / 2)


def test_both_kinds_of_alternative_image_occur_and_the_draws_follow_the_generator():
    x = torch.rand(64, 3, 16, 16)
    alternative = alternative_images(x, torch.Generator().manual_seed(0))
    is_blur = torch.isclose(alternative, blurred(x, 10 * 16 / 224)).flatten(1).all(1)
    assert 16 < is_blur.sum() < 48  # about half blurred, the rest a colour with noise
    flat = alternative[~is_blur]
    channel_means = flat.mean((2, 3))
    assert channel_means.std(0).min() > 0.1  # the colours differ between images
    again = alternative_images(x, torch.Generator().manual_seed(0))
    assert torch.equal(alternative, again)
    assert not torch.equal(alternative, alternative_images(x, torch.Generator().manual_seed(1)))


class RedQuarter(nn.Module):
    """A 2-class classifier of 16 px images: class 1's logit grows with the redness of the top-left quarter."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(2))
        self.modes = []  # the mode of every forward pass

    def forward(self, x):
        self.modes.append(self.training)
        red = (x[:, 0, :8, :8] - x[:, 1:, :8, :8].mean(1)).mean((1, 2))
        return torch.stack([torch.zeros_like(red), 12 * red], 1) + self.bias


def _red_images(n: int = 4) -> torch.Tensor:
    x = torch.full((n, 3, 16, 16), 0.4)
    x[:, 0, :8, :8] = 1.0
    return x


def test_the_objective_sums_its_terms_with_the_papers_weights():
    objective = SaliencyObjective()
    x, mask = _red_images(2), torch.rand(2, 16, 16)
    terms = objective.terms(RedQuarter(), x, mask, torch.tensor([1, 1]), torch.Generator().manual_seed(0))
    expected = 10 * terms["tv"] + 1e-3 * terms["area"] + terms["preserve"] + 5 * terms["destroy"]
    assert torch.allclose(terms["loss"], expected)
    assert (terms["preserve"] > 0).all() and ((terms["destroy"] > 0) & (terms["destroy"] <= 1)).all()


def test_iterative_masks_lie_in_zero_one_and_keep_the_evidence():
    model = RedQuarter().train()
    x, y = _red_images(), torch.ones(4, dtype=torch.long)
    masks = IterativeMask(SaliencyObjective(l1=0.05, l2=2.0), mask_size=4, steps=100, lr=0.2)(model, x, y)
    assert masks.shape == (4, 16, 16) and masks.min() >= 0 and masks.max() <= 1
    inside, outside = masks[:, :8, :8].mean(), torch.cat([masks[:, 8:].flatten(), masks[:, :8, 8:].flatten()]).mean()
    assert inside > 0.6 and outside < 0.3 and inside > outside + 0.4
    assert model.training and all(p.grad is None for p in model.parameters())
    assert not any(model.modes)  # every forward pass in eval mode
    again = IterativeMask(SaliencyObjective(l1=0.05, l2=2.0), mask_size=4, steps=100, lr=0.2)(model, x, y)
    assert torch.equal(masks, again)  # seeded: the same masks at every call
    other = IterativeMask(SaliencyObjective(l1=0.05, l2=2.0), mask_size=4, steps=100, lr=0.2, seed=1)(model, x, y)
    assert not torch.equal(masks, other)  # ... and the seed is what draws the evidence removal


@pytest.mark.parametrize("call, message", [
    (lambda: total_variation(torch.rand(16, 16)), r"masks must be \(B, H, W\)"),
    (lambda: remove_evidence(torch.rand(2, 3, 8, 8), torch.rand(2, 8, 7), torch.rand(2, 3, 8, 8)),
     r"the mask must be \(B, H, W\) = \(2, 8, 8\)"),
    (lambda: SaliencyObjective().terms(RedQuarter(), torch.rand(1, 3, 16, 16), torch.rand(1, 16, 16),
                                       torch.tensor([2]), torch.Generator()), r"class indices must lie in \[0, 1\]"),
    (lambda: IterativeMask(steps=0), "steps >= 1"),
    (lambda: IterativeMask(steps=1)(RedQuarter(), torch.rand(3, 16, 16), [0]), r"\(B, C, H, W\)"),
])
def test_bad_input_is_a_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
