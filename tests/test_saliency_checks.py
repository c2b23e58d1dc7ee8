"""Sanity checks for saliency maps: planted evidence and model randomisation."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib.data.planted_patch import PlantedPatch, planted_patch_images
from course_lib.saliency import (GradCAMSaliency, gradient_saliency, mass_inside, model_randomisation_check,
                                 planted_evidence_check, randomised_copy)


@pytest.fixture(scope="module")
def planted_model(zoo_home):
    from course_lib.zoo import trained_model

    return trained_model("planted_patch", "quick", zoo_home, device="cpu")


def test_planted_evidence_lies_in_the_patch_for_both_maps(planted_model):
    """The acceptance check: at least 70% of each map's mass inside the planted patch."""
    result = planted_evidence_check(planted_model, seed=1)
    assert result["accuracy"] >= 95
    assert result["mass"]["gradient"] >= 0.7, result["mass"]
    assert result["mass"]["Grad-CAM"] >= 0.7, result["mass"]
    assert result["passed"]


def test_planted_evidence_takes_any_saliency_method(planted_model):
    """A method that ignores the model and spreads its mass evenly fails; one that finds the patch passes."""
    def uniform(model, x, y):
        return torch.ones(len(x), 32, 32)

    def patch_only(model, x, y):
        maps = torch.zeros(len(x), 32, 32)
        maps[:, 4:12, 20:28] = 1.0
        return maps

    result = planted_evidence_check(planted_model, {"uniform": uniform, "oracle": patch_only}, seed=1)
    assert result["mass"]["uniform"] == pytest.approx(PlantedPatch().area_fraction)
    assert result["mass"]["oracle"] == pytest.approx(1.0) and not result["passed"]


def test_planted_evidence_check_fails_for_a_model_that_learned_nothing(planted_model):
    """The control: re-initialised weights put about the patch's share of the area there."""
    result = planted_evidence_check(randomised_copy(planted_model, seed=0), seed=1)
    assert not result["passed"]
    assert result["mass"]["gradient"] < 0.3 and result["mass"]["Grad-CAM"] < 0.3


def test_planted_images_differ_only_in_the_patch():
    patch = PlantedPatch()
    x, y = planted_patch_images(64, seed=3, patch=patch)
    assert x.shape == (64, 3, 32, 32) and x.min() >= 0 and x.max() <= 1
    assert set(y.tolist()) == {0, 1}
    outside = torch.ones(32, 32, dtype=torch.bool)
    outside[patch.top:patch.top + patch.size, patch.left:patch.left + patch.size] = False
    grey = (x[:, 0] == x[:, 1]) & (x[:, 1] == x[:, 2])
    assert grey[:, outside].all()  # no colour anywhere outside the patch, for both labels
    assert grey[y == 0].all()  # and none at all without the evidence
    inside = x[y == 1][:, :, patch.top + 3, patch.left + 3]
    assert (inside[:, 0] > inside[:, 1]).float().mean() > 0.9  # the patch is red


def test_mass_inside_by_hand():
    patch = PlantedPatch(image_size=4, top=0, left=2, size=2)
    maps = np.zeros((3, 4, 4))
    maps[0, 0, 2] = 3.0
    maps[0, 3, 3] = 1.0  # 3 of 4 inside
    maps[1] = 1.0  # uniform: 4 of 16 inside
    fractions = mass_inside(maps, patch)
    np.testing.assert_allclose(fractions[:2], [0.75, 0.25])
    assert np.isnan(fractions[2])  # an empty map points nowhere
    with pytest.raises(ValueError, match="non-negative"):
        mass_inside(-maps, patch)
    with pytest.raises(ValueError, match=r"shape \(B, 4, 4\)"):
        mass_inside(np.zeros((4, 4)), patch)


def test_randomised_copy_leaves_the_original_alone(planted_model):
    before = {k: v.clone() for k, v in planted_model.state_dict().items()}
    clone = randomised_copy(planted_model, seed=0)
    for key, value in planted_model.state_dict().items():
        assert torch.equal(value, before[key])
        assert not torch.equal(clone.state_dict()[key], value)


def test_randomisation_check_tells_a_model_map_from_an_image_map(planted_model):
    x, y = planted_patch_images(16, seed=5)
    image_only = model_randomisation_check(planted_model, x, y, lambda m, xs, ys: xs.mean(1))
    np.testing.assert_allclose(image_only, 1.0)  # ignores the model: fails the check
    gradient = model_randomisation_check(planted_model, x, y, gradient_saliency)
    cam = model_randomisation_check(planted_model, x[y == 1], y[y == 1], GradCAMSaliency("conv2"))
    assert np.nanmedian(gradient) < 0.9 and np.nanmedian(cam) < 0.9
