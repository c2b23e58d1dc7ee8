"""Inference-time defences and the adaptive attacks against them: answers known by hand."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from course_lib.attacks import eot_gradient, loss_gradient, pgd
from course_lib.defences import (BPDA, BitDepth, Denoised, DUNet, Ensemble, Preprocessed, RandomResizePad,
                                 Randomised, bpda)
from course_lib.train.batch import Batch
from course_lib.train.objectives import FeatureGuided, LabelGuided, LogitGuided, PixelGuided

SMALL = dict(encoder_widths=(4, 8, 8), encoder_blocks=(1, 1, 1), decoder_widths=(4, 8), decoder_blocks=(1, 1))


def test_dunet_keeps_the_shape_and_is_the_identity_without_its_residual():
    net = DUNet(1, **SMALL)
    for side in (28, 27, 32):  # odd sizes too: the decoder upsamples to each lateral's size
        x = torch.rand(2, 1, side, side)
        assert net(x).shape == x.shape
    nn.init.zeros_(net.to_image.weight)
    nn.init.zeros_(net.to_image.bias)
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(net(x), x)
    assert not torch.equal(DUNet(1, **SMALL)(x), x)  # an untrained residual does change the image
    with pytest.raises(ValueError, match="one stage fewer"):
        DUNet(1, (4, 8), (1, 1), (4, 8), (1, 1))


class Halve(nn.Module):
    """A 'denoiser' with a known output: x / 2."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return x / 2 + self.dummy


class TinyClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(2, 2, bias=False)
        self.fc2 = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.fc1.weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
            self.fc2.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, -1.0]]))

    def forward(self, x):
        return self.fc2(self.fc1(x.flatten(1)))


def test_each_guided_loss_equals_its_hand_computed_value():
    model = Denoised(Halve(), TinyClassifier())
    adv = torch.tensor([[4.0, 2.0]])
    clean = torch.tensor([[1.0, 1.0]])
    y = torch.tensor([1])
    batch = Batch(x=adv, y=y, clean=clean)
    # denoised = [2, 1]; pixel L1 to [1, 1]: (1 + 0) / 2
    assert PixelGuided()(model, batch)[0].item() == pytest.approx(0.5)
    # fc1(denoised) = [2, 3], fc1(clean) = [1, 2]: (1 + 1) / 2
    assert FeatureGuided("fc1")(model, batch)[0].item() == pytest.approx(1.0)
    # logits: fc2([2, 3]) = [4, -3], fc2([1, 2]) = [2, -2]: (2 + 1) / 2
    assert LogitGuided()(model, batch)[0].item() == pytest.approx(1.5)
    # cross-entropy of logits [4, -3] for class 1: log(1 + e^7)
    assert LabelGuided()(model, batch)[0].item() == pytest.approx(torch.log1p(torch.exp(torch.tensor(7.0))).item())
    loss, metrics = FeatureGuided("fc1")(model, batch)
    loss.backward()
    assert model.denoiser.dummy.grad is not None and model.classifier.fc1.weight.grad is None  # frozen target
    assert metrics["acc"] == 0.0
    with pytest.raises(ValueError, match="clean twins"):
        PixelGuided()(model, Batch(x=adv, y=y))


def test_the_frozen_classifier_stays_in_eval_mode():
    model = Denoised(DUNet(1, **SMALL), nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(784, 10)))
    model.train()
    assert model.denoiser.training and not model.classifier.training
    assert not any(p.requires_grad for p in model.classifier.parameters())


def test_random_resize_pad_keeps_the_size_and_draws_from_its_generator():
    x = torch.rand(4, 1, 28, 28)
    outputs = [RandomResizePad(28, 20, torch.Generator().manual_seed(s))(x) for s in (0, 0, 1, 2, 3)]
    assert all(o.shape == x.shape for o in outputs)
    assert torch.equal(outputs[0], outputs[1])
    assert any(not torch.equal(outputs[0], o) for o in outputs[2:])
    layer = RandomResizePad(28, 20, torch.Generator().manual_seed(0)).eval()
    assert not torch.equal(layer(x), layer(x))  # a new draw at every forward pass, in eval mode too
    with pytest.raises(ValueError, match="expects 28x28"):
        layer(torch.rand(1, 1, 32, 32))


def test_random_resize_pad_per_image_gives_each_image_its_own_draw():
    from torch.nn import functional as F

    image = torch.rand(1, 1, 28, 28)
    x = image.repeat(24, 1, 1, 1).requires_grad_(True)
    shared = RandomResizePad(28, 25, torch.Generator().manual_seed(0))(x)
    assert all(torch.equal(shared[0], row) for row in shared), "one draw per batch by default (Xie et al.)"
    out = RandomResizePad(28, 25, torch.Generator().manual_seed(0), per_image=True)(x)
    assert out.shape == x.shape and len(torch.unique(out.detach().flatten(1), dim=0)) > 4
    possible = [F.pad(F.interpolate(image, size=(side, side), mode="bilinear", align_corners=False),
                      (left, 28 - side - left, top, 28 - side - top))[0]
                for side in range(25, 29) for top in range(29 - side) for left in range(29 - side)]
    for row in out.detach():  # every image is a resize-and-pad of itself, exactly
        assert any(torch.equal(row, candidate) for candidate in possible)
    out.sum().backward()
    assert x.grad.abs().sum() > 0, "differentiable, for EOT"


def test_randomised_averages_probabilities_over_draws():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    x = torch.rand(2, 1, 28, 28)
    identity = Randomised(model, nn.Identity(), samples=4)
    assert torch.allclose(identity(x).exp(), torch.softmax(model(x), dim=1), atol=1e-6)


def test_ensemble_rows_sum_to_the_number_of_models():
    members = [nn.Sequential(nn.Flatten(), nn.Linear(16, 3)) for _ in range(3)]
    ensemble = Ensemble(members)
    x = torch.randn(5, 1, 4, 4) * 10
    assert torch.allclose(ensemble.scores(x).sum(1), torch.full((5,), 3.0))
    expected = sum(torch.softmax(m(x), dim=1) for m in members) / 3
    assert torch.allclose(ensemble(x).exp(), expected, atol=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        Ensemble(members[:1])


def test_bit_depth_masks_the_gradient_and_bpda_passes_the_identity_backwards():
    x = torch.rand(3, 1, 4, 4, requires_grad=True)
    weights = torch.randn(3, 1, 4, 4)
    (BitDepth(1)(x) * weights).sum().backward()
    assert torch.count_nonzero(x.grad) == 0  # rounding: zero gradient almost everywhere
    x.grad = None
    out = BPDA(BitDepth(1))(x)
    assert torch.equal(out, BitDepth(1)(x))  # same forward pass
    (out * weights).sum().backward()
    assert torch.equal(x.grad, weights)  # the identity's backward pass


def test_bpda_view_shares_the_weights_and_leaves_the_model_unchanged():
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    defended = Preprocessed(BitDepth(2), classifier)
    view = bpda(defended, "preprocess")
    assert isinstance(view.preprocess, BPDA) and isinstance(defended.preprocess, BitDepth)
    assert view.model is classifier
    x = torch.rand(4, 1, 4, 4)
    assert torch.equal(view(x), defended(x))
    y = torch.tensor([0, 1, 0, 1])
    assert torch.count_nonzero(loss_gradient(defended, x, y)) == 0
    assert torch.count_nonzero(loss_gradient(view, x, y)) > 0
    with pytest.raises(ValueError, match="no child module 'squeeze'"):
        bpda(defended, "squeeze")


def test_eot_with_one_sample_is_plain_pgd_and_averages_otherwise():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    x, y = torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    plain = pgd(model, x, y, 0.1, 0.02, 5, generator=torch.Generator().manual_seed(1))
    eot = pgd(model, x, y, 0.1, 0.02, 5, generator=torch.Generator().manual_seed(1), eot_samples=1)
    assert torch.equal(plain, eot)
    draws = iter([torch.ones(4, 1, 28, 28), 3 * torch.ones(4, 1, 28, 28)])
    averaged = eot_gradient(lambda m, a, b: next(draws), samples=2)(model, x, y)
    assert torch.equal(averaged, 2 * torch.ones(4, 1, 28, 28))
    with pytest.raises(ValueError, match="eot samples must be >= 1"):
        eot_gradient(samples=0)


def test_eot_breaks_a_randomised_model_better_than_one_draw():
    """On a model whose prediction depends on random noise, one-draw gradients are noisier than EOT's."""
    torch.manual_seed(0)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))

    class Noisy(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = linear

        def forward(self, x):
            return self.linear(x + 2.0 * torch.randn_like(x))

    x, y = torch.rand(64, 1, 4, 4), torch.zeros(64, dtype=torch.long)
    true = loss_gradient(linear, x, y)
    one = loss_gradient(Noisy(), x, y)
    many = eot_gradient(samples=64)(Noisy(), x, y)
    assert F.cosine_similarity(many.flatten(), true.flatten(), dim=0) > F.cosine_similarity(
        one.flatten(), true.flatten(), dim=0)


def test_adaptive_evaluation_sees_through_bit_depth_where_the_naive_attack_cannot():
    from course_lib.adaptive import adaptive_evaluation

    torch.manual_seed(0)
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    with torch.no_grad():  # class 1 when the top half is brighter than the bottom half
        top_minus_bottom = torch.cat([torch.ones(8), -torch.ones(8)])
        classifier[1].weight.copy_(torch.stack([-top_minus_bottom, top_minus_bottom]))
        classifier[1].bias.zero_()
    x = torch.cat([torch.full((8, 1, 2, 4), 0.2), torch.full((8, 1, 2, 4), 0.55)], dim=2)
    x = torch.cat([x, x.flip(2)])
    y = (x[:, 0, :2].mean((1, 2)) > x[:, 0, 2:].mean((1, 2))).long()  # 1: top brighter
    defended = Preprocessed(BitDepth(2), classifier)
    result = adaptive_evaluation(defended, x, y, eps=0.3, source=classifier,
                                 attack_view=bpda(defended, "preprocess"), steps=10)
    assert result["clean"] == 100.0
    assert result["white-box"] == 100.0  # zero gradients: PGD never moves
    assert result["adaptive"] < 50.0  # BPDA's gradient finds the flips
    assert result["adaptive"] <= min(result["oblivious"], result["white-box"])


class ScheduledDefence(nn.Module):
    """A 'randomised' defence whose draws are known: right on example i at scored call k iff schedule[k % K][i].

    It ignores its input (logits carry 0 * x, so PGD runs but moves nothing) and
    counts only the calls made without gradients: the scoring calls.
    """

    def __init__(self, schedule: list[list[bool]]):
        super().__init__()
        self.schedule = torch.tensor(schedule)
        self.calls = 0
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        right = self.schedule[self.calls % len(self.schedule)]
        if not torch.is_grad_enabled():
            self.calls += 1
        logits = torch.stack([right.float(), (~right).float()], dim=1)  # label 0 is right
        return logits + 0.0 * x.flatten(1).sum(1, keepdim=True) + self.dummy


def test_a_randomised_defence_is_scored_by_its_expected_accuracy_over_draws():
    from course_lib.adaptive import adaptive_evaluation

    # four draws: example 0 always right, example 1 in two draws of four, example 2 never
    schedule = [[True, True, False], [True, True, False], [True, False, False], [True, False, False]]
    x, y = torch.rand(3, 1, 2, 2), torch.zeros(3, dtype=torch.long)
    source = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))  # the undefended model the transfer attack uses
    result = adaptive_evaluation(ScheduledDefence(schedule), x, y, eps=0.1, source=source,
                                 steps=3, draws=4)
    expected = 100.0 * (1.0 + 0.5 + 0.0) / 3  # by hand: the mean of each example's share of right draws
    for column in ("clean", "oblivious", "white-box", "adaptive"):
        assert result[column] == pytest.approx(expected), (column, result)
        # per-draw accuracies 2/3, 2/3, 1/3, 1/3: their standard deviation is 1/6
        assert result[f"{column} sd"] == pytest.approx(100.0 / 6), (column, result)
    one_draw = adaptive_evaluation(ScheduledDefence(schedule), x, y, eps=0.1, source=source, steps=3)
    assert one_draw["clean sd"] == 0.0 and one_draw["clean"] == pytest.approx(200.0 / 3)  # draw 0 alone
    with pytest.raises(ValueError, match="draws"):
        adaptive_evaluation(ScheduledDefence(schedule), x, y, eps=0.1, source=source, steps=3, draws=0)


def test_the_single_call_rule_is_read_from_the_first_draw_of_each_attack(monkeypatch):
    """The four scored columns get known draws; their first draws give the single-call rule."""
    import course_lib.adaptive as adaptive

    T, F = True, False
    first_draws = [[T, T, T], [F, T, T], [T, T, F], [T, F, T]]  # clean, oblivious, white-box, adaptive
    scored = iter(torch.tensor([first, [T, T, T]]) for first in first_draws)  # (draws=2, N=3) each
    monkeypatch.setattr(adaptive, "_draw_correct", lambda model, adv, y, draws: next(scored))
    x, y = torch.rand(3, 1, 2, 2), torch.zeros(3, dtype=torch.long)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    result = adaptive.adaptive_evaluation(model, x, y, eps=0.1, source=model, steps=3, draws=2)
    assert result["clean one call"] == 100.0
    assert result["oblivious one call"] == result["white-box one call"] == pytest.approx(200.0 / 3)
    # each attack's first call misses a different example: none survives all three
    assert result["adaptive one call"] == 0.0, result
    assert result["adaptive"] == pytest.approx(50.0)  # each example's worst attack: right in 1 of 2 draws
    monkeypatch.undo()
    single = adaptive.adaptive_evaluation(model, x, y, eps=0.1, source=model, steps=3)
    assert not any(key.endswith("one call") for key in single)  # one draw: the columns are that rule


def test_the_adaptive_score_per_example_is_each_examples_worst_attack(monkeypatch):
    """Per example: the share of draws right under its worst attack; the adaptive column is their mean.

    Chapter 8 compares AutoAttack on the first digits with the adaptive score of those same digits.
    """
    import course_lib.adaptive as adaptive

    T, F = True, False
    draws = [[[T, T, T, T], [T, T, T, T]],  # clean (draws=2, N=4)
             [[T, F, T, T], [T, F, T, T]],  # oblivious: example 1 never right
             [[T, T, F, T], [T, T, T, T]],  # white-box: example 2 right in 1 of 2 draws
             [[T, T, T, T], [T, T, T, F]]]  # adaptive: example 3 right in 1 of 2 draws
    scored = iter(torch.tensor(d) for d in draws)
    monkeypatch.setattr(adaptive, "_draw_correct", lambda model, adv, y, n: next(scored))
    x, y = torch.rand(4, 1, 2, 2), torch.zeros(4, dtype=torch.long)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    result = adaptive.adaptive_evaluation(model, x, y, eps=0.1, source=model, steps=3, draws=2)
    assert result["adaptive per example"] == [1.0, 0.0, 0.5, 0.5]
    assert result["adaptive"] == pytest.approx(50.0)


def test_shared_transfer_examples_and_no_second_identical_attack(monkeypatch):
    """The results do not change; PGD runs only for what differs: 3 runs -> 2 -> 1."""
    import course_lib.adaptive as adaptive

    torch.manual_seed(0)
    source, defended = (nn.Sequential(nn.Flatten(), nn.Linear(4, 3)) for _ in range(2))
    x, y = torch.rand(8, 1, 2, 2), torch.randint(0, 3, (8,))
    real_pgd, calls = adaptive.pgd, []
    monkeypatch.setattr(adaptive, "pgd", lambda model, *a, **k: calls.append(model) or real_pgd(model, *a, **k))
    view = nn.Sequential(nn.Identity(), defended)  # an explicit view: the adaptive attack runs
    with_view = adaptive.adaptive_evaluation(defended, x, y, 0.2, source=source, attack_view=view, steps=3)
    assert len(calls) == 3
    calls.clear()
    plain = adaptive.adaptive_evaluation(defended, x, y, 0.2, source=source, steps=3)
    assert len(calls) == 2 and plain == with_view  # the view computes what the model does
    transfer = adaptive.transfer_examples(source, x, y, 0.2, steps=3)
    calls.clear()
    shared = adaptive.adaptive_evaluation(defended, x, y, 0.2, source=source, steps=3, transfer=transfer)
    assert calls == [defended] and shared == plain
    with pytest.raises(ValueError, match="one example per image"):
        adaptive.adaptive_evaluation(defended, x, y, 0.2, source=source, steps=3, transfer=transfer[:4])


def test_the_adaptive_column_counts_an_example_only_if_it_survives_every_attack(monkeypatch):
    """Each attack breaks a different example: every column keeps two of three, the adaptive one none."""
    import course_lib.adaptive as adaptive

    source, view = nn.Flatten(), nn.Identity()

    class Defence(nn.Module):  # example i falls when the image carries mark i + 1
        def forward(self, x):
            mark = x.flatten(1)[:, 0].round().long()
            wrong = mark == torch.arange(len(x)) + 1
            return torch.stack([(~wrong).float(), wrong.float()], dim=1)

    defended = Defence()
    marks = {id(source): 1.0, id(defended): 2.0, id(view): 3.0}  # oblivious, white-box, adaptive

    def fake_pgd(model, x, y, eps, step, steps, generator=None, eot_samples=1):
        return torch.full_like(x, marks[id(model)])

    monkeypatch.setattr(adaptive, "pgd", fake_pgd)
    x, y = torch.zeros(3, 1, 2, 2), torch.zeros(3, dtype=torch.long)
    result = adaptive.adaptive_evaluation(defended, x, y, eps=0.1, source=source, attack_view=view, steps=2)
    assert result["clean"] == 100.0
    assert result["oblivious"] == result["white-box"] == pytest.approx(200.0 / 3)
    assert result["adaptive"] == 0.0, result
