"""The engine's adversarial plug-ins: logit-pairing losses, batch makers, stored adversarial sets, callbacks."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from course_lib.attacks import FastFGSMAttack, FGSMAttack, PGDAttack, fast_fgsm
from course_lib.train import Engine
from course_lib.train.batches import AttackBatches, CleanBatches, StaticAugmentation, adversarial_dataset
from course_lib.train.callbacks import EpsWarmup, OneCycle, OverfittingGuard
from course_lib.train.callbacks import overfitting_guard
from course_lib.train.losses import adversarial_logit_pairing, clean_logit_pairing, logit_squeezing
from course_lib.train.objectives import (AdversarialLogitPairing, CleanLogitPairing, CrossEntropy,
                                         LogitSqueezing)


def _ce(logits, label):
    return -logits[label] + math.log(sum(math.exp(v) for v in logits))


def test_adversarial_logit_pairing_by_hand():
    clean, adv, y = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 1.0]]), torch.tensor([0])
    ce = 0.5 * (_ce([2.0, 0.0], 0) + _ce([0.0, 1.0], 0))
    mse = ((2 - 0) ** 2 + (0 - 1) ** 2) / 2
    assert adversarial_logit_pairing(clean, adv, y, lam=0.3).item() == pytest.approx(ce + 0.3 * mse, rel=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        adversarial_logit_pairing(clean, torch.zeros(2, 2), y)


def test_clean_logit_pairing_by_hand():
    logits = torch.tensor([[1.0, 0.0], [0.0, 0.0], [3.0, 1.0], [0.0, 2.0]])
    y = torch.tensor([0, 1, 0, 1])
    ce = sum(_ce(row, label) for row, label in zip(logits.tolist(), y.tolist())) / 4
    mse = ((1 - 3) ** 2 + (0 - 1) ** 2 + (0 - 0) ** 2 + (0 - 2) ** 2) / 4  # pairs (0, 2) and (1, 3)
    assert clean_logit_pairing(logits, y, lam=0.5).item() == pytest.approx(ce + 0.5 * mse, rel=1e-6)
    with pytest.raises(ValueError, match="even batch size"):
        clean_logit_pairing(logits[:3], y[:3])


def test_logit_squeezing_by_hand():
    logits, y = torch.tensor([[3.0, 4.0], [0.0, 0.0]]), torch.tensor([1, 0])
    ce = (_ce([3.0, 4.0], 1) + _ce([0.0, 0.0], 0)) / 2
    assert logit_squeezing(logits, y, lam=0.1).item() == pytest.approx(ce + 0.1 * (5.0 + 0.0) / 2, rel=1e-6)


def _linear_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 3))


def _data(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.rand(n, 1, 4, 4, generator=g), torch.randint(0, 3, (n,), generator=g))


def _engine(model, **kwargs):
    kwargs.setdefault("batch_size", 8)
    return Engine(model, torch.optim.Adam(model.parameters(), lr=1e-2), device="cpu", monitor=None,
                  progress=False, **kwargs)


class Recorder(nn.Module):
    """Wraps a model and records the inputs and train/eval mode of every forward pass."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, []

    def forward(self, x):
        self.calls.append((x.detach().clone(), self.training, torch.is_grad_enabled()))
        return self.inner(x)


def test_fast_fgsm_moves_the_input_within_the_ball_and_leaves_no_weight_gradients():
    model, x, y = _linear_model(), torch.rand(8, 1, 4, 4), torch.randint(0, 3, (8,))
    adv = fast_fgsm(model, x, y, eps=0.1, alpha=0.125, generator=torch.Generator().manual_seed(0))
    assert (adv - x).abs().max() <= 0.1 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    assert not adv.requires_grad and all(p.grad is None for p in model.parameters())
    # the step really goes up the loss: most pixels sit at the edge of the ball that the gradient points to
    assert ((adv - x).abs() > 0.09).float().mean() > 0.5
    loss = nn.functional.cross_entropy
    with torch.no_grad():
        assert loss(model(adv), y) > loss(model(x), y)


@pytest.mark.parametrize("attack", [PGDAttack(0.1, 0.05, 2), FastFGSMAttack(0.1)])
def test_attack_batches_are_made_in_eval_mode_and_differ_from_the_clean_batch(attack):
    model = Recorder(nn.Sequential(nn.Flatten(), nn.Linear(16, 3), nn.Dropout(0.5)))
    engine = _engine(model, batches=AttackBatches(attack))
    data = _data(8)
    engine.fit(data, 1)
    attack_calls = [c for c in model.calls if not c[1]]
    train_calls = [c for c in model.calls if c[1]]
    assert attack_calls, "the attack must run in eval mode"
    assert len(train_calls) == 1
    trained_on = train_calls[0][0]
    assert not any(torch.equal(trained_on[i], data.tensors[0][j]) for i in range(8) for j in range(8))
    assert trained_on.min() >= 0 and trained_on.max() <= 1


def test_attack_batches_keep_the_clean_twin_and_use_the_run_generator():
    seen = []

    class Recording(AttackBatches):
        def __call__(self, engine, loaded):
            seen.append(super().__call__(engine, loaded))
            return seen[-1]

    data, models = _data(8), [_linear_model(), _linear_model()]
    global_state = torch.get_rng_state()
    for model in models:
        _engine(model, batches=Recording(PGDAttack(0.1, 0.05, 1)), seed=3).fit(data, 1)
    first, second = seen
    assert torch.equal(first.x, second.x)  # same seed, same random starts
    assert torch.equal(torch.get_rng_state(), global_state)  # and the global RNG was not used
    assert not torch.equal(first.x, first.clean)
    assert (first.x - first.clean).abs().max() <= 0.1 + 1e-6


def test_adversarial_dataset_is_cached_by_weights_attack_and_settings(tmp_path):
    model = _linear_model()
    data = _data(10)
    first = adversarial_dataset(model, data, FGSMAttack(0.1), cache_dir=tmp_path)
    assert not torch.equal(first.tensors[0], data.tensors[0])  # the stored set is adversarial, not clean
    assert torch.equal(first.tensors[0], FGSMAttack(0.1)(model, *data.tensors))
    assert len(list(tmp_path.glob("adv_FGSMAttack_*.pt"))) == 1
    again = adversarial_dataset(model, data, FGSMAttack(0.1), cache_dir=tmp_path)
    assert torch.equal(first.tensors[0], again.tensors[0])
    adversarial_dataset(model, data, FGSMAttack(0.2), cache_dir=tmp_path)  # another eps, another file
    with torch.no_grad():
        model[1].bias.add_(1.0)
    adversarial_dataset(model, data, FGSMAttack(0.1), cache_dir=tmp_path)  # other weights, another file
    assert len(list(tmp_path.glob("adv_FGSMAttack_*.pt"))) == 3
    one = adversarial_dataset(model, data, PGDAttack(0.1, 0.05, 1), cache_dir=tmp_path)
    three = adversarial_dataset(model, data, PGDAttack(0.1, 0.05, 3), cache_dir=tmp_path)  # only steps differ
    assert len(list(tmp_path.glob("adv_PGDAttack_*.pt"))) == 2 and not torch.equal(one.tensors[0], three.tensors[0])


def test_static_augmentation_pairs_each_example_with_its_own_stored_twin():
    data = _data(16)
    model = Recorder(_linear_model())
    twins = adversarial_dataset(model.inner, data, FGSMAttack(0.1)).tensors[0]  # the starting weights
    model.calls.clear()
    _engine(model, objective=AdversarialLogitPairing(0.5), batches=StaticAugmentation(FGSMAttack(0.1), paired=True),
            batch_size=4).fit(data, 1)
    trained = [c[0] for c in model.calls if c[1]]
    assert sum(len(x) for x in trained) == 32  # 16 clean + 16 twins, one pass over the pairs
    for x in trained:
        clean, adv = x[:len(x) // 2], x[len(x) // 2:]
        for ci, ai in zip(clean, adv):
            index = next(i for i in range(16) if torch.equal(data.tensors[0][i], ci))
            assert torch.equal(ai, twins[index])


def test_static_augmentation_over_several_eps_levels_gives_each_example_one_twin_of_its_level():
    """Defendr's levels: example i is attacked at level i % k, each level's set is stored once."""
    data = _data(12)
    model = _linear_model()
    levels = (FGSMAttack(0.06), FGSMAttack(0.12), FGSMAttack(0.3))
    augmented = StaticAugmentation(levels).dataset(_engine(model), data)
    x, y = augmented.tensors
    assert len(x) == 24 and torch.equal(y, torch.cat([data.tensors[1]] * 2))
    moved = (x[12:] - data.tensors[0]).abs().flatten(1).amax(1)
    expected = torch.tensor([levels[i % 3].eps for i in range(12)])
    assert torch.allclose(moved, expected, atol=1e-6), moved
    paired = StaticAugmentation(list(levels), paired=True).dataset(_engine(model), data).tensors
    assert torch.equal(paired[1], x[12:]) and torch.equal(paired[0], data.tensors[0])
    with pytest.raises(ValueError, match="at least one attack"):
        StaticAugmentation([])


def test_denoiser_pairs_give_each_image_one_twin_per_attack_its_budgets_taking_turns():
    """HGD-style pairs at Defendr's budgets: a group of budgets costs one twin per image."""
    from course_lib.train.batches import DenoiserPairs

    data = _data(12)
    model = nn.Sequential(nn.Identity())
    model.classifier = _linear_model()
    levels = [FGSMAttack(0.06), FGSMAttack(0.12), FGSMAttack(0.3)]
    clean, adv, y = DenoiserPairs([levels, PGDAttack(0.3, 0.1, 3)]).dataset(_engine(model), data).tensors
    assert len(clean) == 24 and torch.equal(clean[:12], data.tensors[0]) and torch.equal(clean[12:], clean[:12])
    assert torch.equal(y, torch.cat([data.tensors[1]] * 2))
    moved = (adv - clean).abs().flatten(1).amax(1)
    expected = torch.tensor([levels[i % 3].eps for i in range(12)])
    assert torch.allclose(moved[:12], expected, atol=1e-6), moved[:12]
    assert (moved[12:] <= 0.3 + 1e-6).all() and (moved[12:] > 0.06).any()
    with pytest.raises(ValueError, match="at least one attack recipe in each place"):
        DenoiserPairs([[], FGSMAttack(0.1)])


def test_squeezing_objective_is_used_in_training():
    data = _data(16)
    losses = {}
    for name, objective in (("ce", CrossEntropy()), ("squeeze", LogitSqueezing(lam=1.0))):
        history = _engine(_linear_model(), objective=objective, batch_size=16).fit(data, 1)
        losses[name] = history["train_loss"][0]
    with torch.no_grad():
        logits = _linear_model()(data.tensors[0])
    expected = logit_squeezing(logits, data.tensors[1], 1.0).item()
    assert losses["squeeze"] == pytest.approx(expected, rel=1e-5)
    assert losses["squeeze"] > losses["ce"] + 0.1


def test_alp_needs_adversarial_batches_and_clp_drops_an_odd_last_batch():
    with pytest.raises(ValueError, match="needs the clean twin"):
        _engine(_linear_model(), objective=AdversarialLogitPairing()).fit(_data(8), 1)
    history = _engine(_linear_model(), objective=CleanLogitPairing(), batch_size=6).fit(_data(9), 1)
    assert math.isfinite(history["train_loss"][0])


def test_collapse_of_holdout_pgd_accuracy_stops_training_and_restores_the_best(monkeypatch):
    """Wong et al.'s guard: a sudden fall of PGD accuracy ends training; the best epoch's weights return."""
    guard = iter([50.0, 60.0, 10.0, 70.0])
    monkeypatch.setattr(overfitting_guard, "pgd_accuracy", lambda *a, **k: next(guard))
    snapshots = []
    monkeypatch.setattr(overfitting_guard, "accuracy", lambda m, *a, **k: snapshots.append(
        {k: v.clone() for k, v in m.state_dict().items()}) or 0.0)
    model, data = _linear_model(), _data()
    engine = _engine(model, batches=AttackBatches(FastFGSMAttack(0.1)),
                     callbacks=[OverfittingGuard(*data.tensors, eps=0.1)])
    history = engine.fit(data, 4, restore_best=True)
    assert engine.stop and engine.best_epoch == 1 and len(history["holdout_pgd_acc"]) == 3
    for key, value in model.state_dict().items():
        assert torch.equal(value, snapshots[1][key])  # the weights of epoch 2


def test_guard_measures_a_starting_model_as_it_measures_each_epoch():
    """Chapter 6's epoch 0: guard.measure on the untrained model equals an epoch that changed nothing."""
    model, data = _linear_model(), _data()
    guard = OverfittingGuard(*data.tensors, eps=0.1)
    before = guard.measure(model, "cpu")
    engine = Engine(model, torch.optim.SGD(model.parameters(), lr=0.0), device="cpu", progress=False,
                    batches=AttackBatches(FastFGSMAttack(0.1)), callbacks=[guard], batch_size=8)
    history = engine.fit(data, 1)
    assert (history["holdout_clean_acc"][0], history["holdout_pgd_acc"][0]) == before
    assert before[1] <= before[0]


def test_eps_warmup_grows_the_training_eps_linearly_per_step():
    seen = []

    class Spy(PGDAttack):
        def __call__(self, model, x, y, generator=None):
            seen.append(self.eps)
            return super().__call__(model, x, y, generator)

    engine = _engine(_linear_model(), batches=AttackBatches(Spy(0.2, 0.05, 1)), callbacks=[EpsWarmup(2)])
    history = engine.fit(_data(16), 3)  # 2 steps per epoch: 0.05, 0.1, 0.15, 0.2, 0.2, 0.2
    assert seen == pytest.approx([0.05, 0.1, 0.15, 0.2, 0.2, 0.2])
    assert history["train_eps"] == pytest.approx([0.1, 0.2, 0.2])
    assert engine.batches.attack.eps == 0.2


def test_one_cycle_runs_one_cycle_over_the_whole_fit(monkeypatch):
    seen = []
    original = torch.optim.Adam.step

    def recording_step(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", recording_step)
    _engine(_linear_model(), callbacks=[OneCycle(0.01)]).fit(_data(), 2)
    assert len(seen) == 8
    assert max(seen) == pytest.approx(0.01, rel=0.05) and seen[0] < 0.002 and seen[-1] < 0.001


def test_clean_batches_are_the_loaded_batch():
    x, y = torch.rand(4, 1, 4, 4), torch.arange(4)
    batch = CleanBatches()(None, (x, y))
    assert batch.x is x and batch.y is y and batch.clean is None
