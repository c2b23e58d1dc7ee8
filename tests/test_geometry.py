"""Local geometry measures on functions whose answers are known (Aghdam et al.'s four measures)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from course_lib.geometry import (MinMax, confident_samples, fit_minmax, isotropy, layer_outputs,
                                 local_lipschitz, sample_generator, sphere_perturbations, symmetry, topology)

RADII = [0.01, 0.5, 2.0]


class RadialScore(nn.Module):
    """Two-class logits that depend only on ||x - centre||: isotropic around the centre."""

    def __init__(self, centre: torch.Tensor):
        super().__init__()
        self.centre = nn.Parameter(centre.clone())

    def forward(self, x):
        d = (x - self.centre).flatten(1).norm(dim=1)
        return torch.stack([torch.zeros_like(d), d - 1.0], dim=1)


class SumScore(nn.Module):
    """Two-class logits from the sum of the pixels: invariant to permutations, not isotropic."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(1.0))

    def forward(self, x):
        s = self.weight * (x.flatten(1) - 0.5).sum(dim=1)
        return torch.stack([torch.zeros_like(s), s], dim=1)


class Flat(nn.Module):
    """x -> layer(x.flatten(1)), so a linear map can stand for a model."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer(x.flatten(1))


class Scale(nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = nn.Parameter(torch.tensor(factor))

    def forward(self, x):
        return self.factor * x.flatten(1)


class Unrelated(nn.Module):
    """Outputs drawn at random, independent of the input."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))
        self.generator = torch.Generator().manual_seed(123)

    def forward(self, x):
        return torch.randn(len(x), 16, generator=self.generator)


def test_a_radial_function_is_isotropic_and_a_sum_is_symmetric_but_not_isotropic():
    x = torch.rand(2, 1, 8, 8)
    y = torch.zeros(2, dtype=torch.long)
    radial = isotropy(RadialScore(x[0]), x[:1], y[:1], RADII, directions=20)
    assert radial.range.abs().max() < 1e-5 and radial.range.shape == (1, 3)
    summed = SumScore()
    assert symmetry(summed, x, y, RADII, directions=20).range.abs().max() < 1e-5
    spread = isotropy(summed, x, y, RADII, directions=20)
    assert (spread.range[:, 1:] > 1e-3).all()  # random directions change the sum, so the score moves
    # a linear model is neither: its score moves under permutations too
    linear = Flat(nn.Linear(64, 2))
    assert (symmetry(linear, x, y, RADII[1:], directions=20).range > 1e-4).all()


def test_score_spread_reports_mean_scores_and_misclassified_radii():
    x = torch.rand(1, 1, 8, 8)
    model = RadialScore(x[0])  # class 0 has probability 1 / (1 + exp(d - 1)), below 0.5 once d > 1
    result = isotropy(model, x, torch.tensor([0]), [0.5, 2.0], directions=10)
    expected = torch.sigmoid(-(torch.tensor([0.5, 2.0]) - 1.0))
    assert torch.allclose(result.mean[0], expected, atol=1e-5)
    assert result.misclassified[0].tolist() == [False, True]


def test_the_range_is_max_minus_min_over_the_same_draws_and_any_miss_counts():
    x = torch.full((1, 1, 4, 4), 0.5)  # on SumScore's boundary: half the copies fall on each side
    model = SumScore()
    result = isotropy(model, x, torch.tensor([1]), [0.5, 1.0], directions=40, seed=3)
    generator = sample_generator(3, 0)
    for j, radius in enumerate([0.5, 1.0]):
        copies = x[0] + sphere_perturbations((1, 4, 4), radius, 40, generator)
        with torch.no_grad():
            score = torch.softmax(model(copies), dim=1)[:, 1]
        assert result.range[0, j] == pytest.approx((score.max() - score.min()).item(), abs=1e-6)
        assert result.mean[0, j] == pytest.approx(score.mean().item(), abs=1e-6)
        assert 0 < (score < 0.5).sum() < 40  # some copies misclassified, not all
    assert result.misclassified.all()


def test_perturbations_have_the_radius_and_repeat_with_the_seed():
    v = sphere_perturbations((1, 4, 4), 2.5, 7, sample_generator(0, 3))
    assert torch.allclose(v.flatten(1).norm(dim=1), torch.full((7,), 2.5))
    assert torch.equal(v, sphere_perturbations((1, 4, 4), 2.5, 7, sample_generator(0, 3)))
    assert not torch.equal(v, sphere_perturbations((1, 4, 4), 2.5, 7, sample_generator(0, 4)))
    assert not torch.equal(v, sphere_perturbations((1, 4, 4), 2.5, 7, sample_generator(1, 3)))


def test_every_model_sees_the_same_perturbations_and_is_left_as_found():
    x = torch.rand(2, 1, 8, 8)
    a, b = Flat(nn.Linear(64, 4)), Flat(nn.Linear(64, 4))
    a.train()
    h, g = MinMax(0.0, 1.0), MinMax(-1.0, 1.0)
    first = local_lipschitz(a, x, RADII, "logits", (h, g), directions=5, seed=7)
    second = local_lipschitz(b, x, RADII, "logits", (h, g), directions=5, seed=7)
    np.testing.assert_array_equal(first.input_distance, second.input_distance)
    assert not np.allclose(first.output_distance, second.output_distance)
    again = local_lipschitz(a, x, RADII, "logits", (h, g), directions=5, seed=7)
    np.testing.assert_array_equal(first.output_distance, again.output_distance)
    assert a.training and all(p.grad is None and p.requires_grad for p in a.parameters())


def test_mantel_rho_is_one_for_a_scaling_and_near_zero_for_unrelated_outputs():
    x = torch.rand(4, 1, 6, 6)
    scaled = topology(Scale(3.0), x, [0.1, 1.0], ["logits"], copies=12, permutations=199)
    assert np.allclose(scaled.rho, 1.0, atol=1e-9) and (scaled.p <= 0.01).all()
    unrelated = topology(Unrelated(), x, [0.1, 1.0], ["logits"], copies=30, permutations=199)
    assert abs(unrelated.rho.mean()) < 0.05 and np.abs(unrelated.rho).max() < 0.3
    assert unrelated.p.mean() > 0.2


def test_mantel_of_a_nonlinear_layer_lies_between():
    x = torch.rand(3, 1, 6, 6)
    net = nn.Sequential(nn.Flatten(), nn.Linear(36, 32), nn.ReLU(), nn.Linear(32, 8))
    result = topology(net, x, [0.5], ["0", "1", "logits"], copies=15, permutations=99)
    assert result.rho.shape == (3, 1, 3) and result.layers == ["0", "1", "logits"]
    assert np.allclose(result.rho[..., 0], 1.0)  # flatten keeps every distance
    assert (result.rho[..., 2] < 0.999).all()   # the ReLU network does not


def test_mantel_rho_is_pearsons_r_of_squared_distances_at_the_penultimate_layer():
    """The paper's statistic, by hand: Pearson's r of squared distances (d d^T), at the layer before the classifier."""
    from scipy.stats import pearsonr

    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(36, 16), nn.ReLU(), nn.Linear(16, 4))
    x = torch.rand(1, 1, 6, 6)
    result = topology(net, x, [0.8], ["2"], copies=12, permutations=9, seed=3)  # "2": the penultimate ReLU
    points = x[0] + sphere_perturbations(x[0].shape, 0.8, 12, sample_generator(3, 0))
    with torch.no_grad():
        features = net[:3](points)
    upper = np.triu_indices(12, k=1)
    d_in = (torch.cdist(points.flatten(1).double(), points.flatten(1).double()) ** 2).numpy()[upper]
    d_out = (torch.cdist(features.double(), features.double()) ** 2).numpy()[upper]
    assert result.rho[0, 0, 0] == pytest.approx(pearsonr(d_in, d_out)[0], abs=1e-9)
    plain = topology(net, x, [0.8], ["2"], copies=12, permutations=9, seed=3, squared=False)
    assert plain.rho[0, 0, 0] == pytest.approx(pearsonr(np.sqrt(d_in), np.sqrt(d_out))[0], abs=1e-9)
    assert abs(plain.rho[0, 0, 0] - result.rho[0, 0, 0]) > 1e-4  # the two statistics differ here


def test_layer_outputs_reads_hooks_and_names_unknown_layers():
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU())
    x = torch.randn(2, 1, 2, 2)
    out = layer_outputs(net, x, ["1", "logits"])
    assert torch.allclose(out["1"], net[1](x.flatten(1)), atol=1e-6)
    assert torch.equal(out["logits"], net(x).detach())
    assert not net[1]._forward_hooks  # hooks removed
    with pytest.raises(ValueError, match="no layer 'fc9'.*'logits' for the output"):
        layer_outputs(net, x, ["fc9"])


def test_the_lipschitz_ratio_of_a_linear_map_never_exceeds_its_largest_singular_value():
    torch.manual_seed(0)
    linear = nn.Linear(64, 5)
    model = Flat(linear)
    x = torch.rand(3, 1, 8, 8)
    images = torch.rand(200, 1, 8, 8)
    h, g = fit_minmax(model, images, "logits")
    result = local_lipschitz(model, x, RADII, "logits", (h, g), directions=50)
    # undo the normalisers: the ratio of raw distances is ratio * (g range) / (h range)
    raw = result.ratio * (g.high - g.low) / (h.high - h.low)
    singular = torch.linalg.matrix_norm(linear.weight.detach(), ord=2).item()
    assert raw.max() <= singular + 1e-5
    # and it is the ratio of this exact map: recompute sample 0's copies at the first radius
    v = sphere_perturbations((1, 8, 8), RADII[0], 50, sample_generator(0, 0))
    expected = (v.flatten(1) @ linear.weight.detach().T).norm(dim=1) / v.flatten(1).norm(dim=1)
    np.testing.assert_allclose(raw[0, 0], expected.numpy(), rtol=1e-3)
    assert 0 <= result.share_below_one <= 1
    slope = result.fit(1)[0]
    assert slope == pytest.approx(np.polyfit(result.input_distance.ravel(), result.output_distance.ravel(), 1)[0])


def test_confident_samples_keeps_only_what_every_model_gets_right_with_confidence():
    x = torch.rand(4, 1, 2, 2)
    always_zero = Flat(nn.Linear(4, 2))
    with torch.no_grad():
        always_zero.layer.weight.zero_()
        always_zero.layer.bias.copy_(torch.tensor([10.0, 0.0]))
    y = torch.tensor([0, 1, 0, 0])
    assert confident_samples([always_zero], x, y).tolist() == [0, 2, 3]
    assert confident_samples([always_zero], x, y, count=2).tolist() == [0, 2]
    # below 0.5 a confident answer can still be wrong: class 1 at 0.4 loses to class 0 at 0.5
    unsure = Flat(nn.Linear(4, 3))
    with torch.no_grad():
        unsure.layer.weight.zero_()
        unsure.layer.bias.copy_(torch.log(torch.tensor([0.5, 0.4, 0.1])))
    assert confident_samples([unsure], x, torch.tensor([1, 0, 0, 1]), threshold=0.3).tolist() == [1, 2]
    assert confident_samples([unsure, always_zero], x, torch.tensor([1, 0, 0, 1]), threshold=0.3).tolist() == [1, 2]
    with pytest.raises(ValueError, match="lower the threshold"):
        confident_samples([always_zero], x, y, threshold=0.99999999)


def test_bad_arguments_are_named():
    x = torch.rand(1, 1, 4, 4)
    with pytest.raises(ValueError, match="radii must be positive"):
        isotropy(Scale(1.0), x, [0], [0.0, 1.0])
    with pytest.raises(ValueError, match="at least 2 perturbations"):
        symmetry(Scale(1.0), x, [0], [1.0], directions=1)
    with pytest.raises(ValueError, match="high > low"):
        MinMax(1.0, 1.0)


def test_each_measure_makes_one_forward_pass_per_sample_and_radius():
    calls = []
    model = Flat(nn.Linear(16, 3))
    model.register_forward_hook(lambda module, inputs, output: calls.append(len(inputs[0])))
    x, y = torch.rand(2, 1, 4, 4), torch.tensor([0, 1])
    isotropy(model, x, y, RADII, directions=9)
    assert calls == [9] * 6  # 2 samples x 3 radii, all 9 directions in one batch
    calls.clear()
    topology(model, x, RADII, ["layer", "logits"], copies=5, permutations=9)
    assert calls == [5] * 6  # both layers read from the same pass
    calls.clear()
    local_lipschitz(model, x, RADII, "logits", (MinMax(0, 1), MinMax(-1, 1)), directions=4)
    assert calls == [1, 4, 4, 4] * 2  # the clean image, then one pass per radius
