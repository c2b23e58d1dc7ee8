"""Adversarial attacks: thin, safe wrappers over cleverhans's PyTorch attacks.

Every attack here takes pixels in [0, 1], eps in pixel units, and the **true**
labels, and returns a detached tensor in [0, 1] within the eps ball. What the
wrappers add to cleverhans (whose attacks do the actual work):

* the model runs in eval mode with frozen parameters, and is handed back as it
  came (mode, ``requires_grad``, the caller's ``.grad``). cleverhans leaves
  the model in whatever mode it was (dropout and batch norm then change the
  attack, and a batch no longer equals its examples one by one) and writes
  ``.grad`` on every parameter; freezing the parameters also skips their
  gradients, which makes each step cheaper (``benchmarks/attacks.py``);
* labels are required. cleverhans labels the input with the model's own
  prediction when ``y`` is None, which is right for adversarial *training*
  (no label leaking) but silently wrong for *evaluation*: a misclassified
  input is then "attacked" towards its wrong label. Pass ``predict(model, x)``
  to get that behaviour on purpose;
* cleverhans's PGD and SPSA sanity checks compare CUDA tensors with Python
  floats and fail on a GPU; the wrappers turn them off and check their inputs
  themselves, with errors that say what is wrong;
* ``pgd`` runs its own loop over cleverhans's step and projection, so that a
  defence's gradient can be swapped in (EOT, BPDA) and the random start comes
  from a ``torch.Generator`` the caller owns.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from cleverhans.torch.attacks.carlini_wagner_l2 import carlini_wagner_l2
from cleverhans.torch.attacks.fast_gradient_method import fast_gradient_method
from cleverhans.torch.attacks.spsa import spsa as cleverhans_spsa
from cleverhans.torch.utils import clip_eta, optimize_linear
from torch import nn
from torch.nn import functional as F

from .model_state import frozen_eval


def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """The model's predicted classes for ``x`` (eval mode, no gradients; mode restored)."""
    with frozen_eval(model), torch.no_grad():
        return torch.cat([model(chunk).argmax(1) for chunk in x.split(batch_size)])


def _check(model: nn.Module, x: torch.Tensor, y, eps: float | None = None,
           step: float | None = None) -> torch.Tensor:
    """Validate an attack's inputs; return the labels as a tensor on x's device."""
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or not x.dtype.is_floating_point:
        raise ValueError("x must be a float tensor with a batch dimension, e.g. (B, C, H, W)")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"x must hold pixels in [0, 1], got values in [{x.min():.3g}, {x.max():.3g}]; "
                         "put normalisation inside the model, not in the data")
    if y is None:
        raise ValueError("pass the true labels y; to attack the model's own predictions instead, "
                         "pass y=predict(model, x)")
    y = torch.as_tensor(y, device=x.device)
    if y.ndim != 1 or len(y) != len(x) or y.dtype.is_floating_point:
        raise ValueError(f"y must be ({len(x)},) integer class labels, got {tuple(y.shape)} {y.dtype}")
    if eps is not None and (not math.isfinite(eps) or eps < 0):
        raise ValueError(f"eps must be a finite number >= 0 (pixel units), got {eps}")
    if step is not None and (step <= 0 or (eps is not None and step > eps)):
        raise ValueError(f"step must be in (0, eps] = (0, {eps}], got {step}")
    device = next(model.parameters()).device
    if x.device != device:
        raise ValueError(f"x is on {x.device} but the model is on {device}; move one of them")
    with torch.no_grad(), frozen_eval(model):
        n_classes = model(x[:1]).shape[1]
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"labels must be in [0, {n_classes - 1}], got [{int(y.min())}, {int(y.max())}]")
    return y


def _finish(x: torch.Tensor, adv: torch.Tensor, eps: float) -> torch.Tensor:
    """Detach, and project onto the eps ball around x and onto [0, 1] (undoes round-off)."""
    adv = adv.detach().to(x.dtype)
    return torch.min(torch.max(adv, x - eps), x + eps).clamp(0, 1)


def fgsm(model: nn.Module, x: torch.Tensor, y, eps: float, targeted: bool = False) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow et al.): one step of size eps along sign(grad).

    Args:
        x: (B, ...) pixels in [0, 1]; y: (B,) true labels (targets if ``targeted``).
        eps: L-infinity budget in pixel units, e.g. 0.3 on MNIST.

    Returns:
        (B, ...) adversarial examples, detached; ``eps == 0`` returns x unchanged.
    """
    y = _check(model, x, y, eps)
    if eps == 0:
        return x.detach().clone()
    with frozen_eval(model):
        adv = fast_gradient_method(model, x, eps, np.inf, clip_min=0.0, clip_max=1.0, y=y, targeted=targeted)
    return _finish(x, adv, eps)


def loss_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Gradient of the summed cross-entropy with respect to the input ``x``: (B, ...) like x.

    The default gradient of ``pgd``. A defence that hides or randomises its
    gradient gets another function with this signature: the average over
    random transformations (EOT) or a differentiable stand-in for a
    non-differentiable layer (BPDA). The model is already frozen and in eval mode.
    """
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(model(x), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def eot_gradient(gradient: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] = loss_gradient,
                 samples: int = 1) -> Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]:
    """Expectation over transformation (Athalye et al.): ``gradient`` averaged over ``samples`` calls.

    Each call runs the model forward again, so a randomised defence draws new
    randomness every time; the average estimates the gradient of the expected loss.
    """
    if samples < 1:
        raise ValueError(f"eot samples must be >= 1, got {samples}")

    def averaged(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        total = gradient(model, x, y)
        for _ in range(samples - 1):
            total = total + gradient(model, x, y)
        return total / samples

    return averaged


def pgd(model: nn.Module, x: torch.Tensor, y, eps: float, step: float, steps: int,
        restarts: int = 1, rand_init: bool = True, targeted: bool = False,
        generator: torch.Generator | None = None,
        gradient: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] = loss_gradient,
        eot_samples: int = 1) -> torch.Tensor:
    """Projected gradient descent (Madry et al.), L-infinity.

    The kit runs the iteration itself, so that the gradient can be replaced
    (``gradient``), and uses cleverhans for the step (``optimize_linear``:
    eps times the sign of the gradient) and the projection (``clip_eta``). For
    the same random start it equals cleverhans's ``projected_gradient_descent``
    (tests/test_attacks.py checks it).

    Args:
        eps: budget; step: step size in (0, eps]; steps: iterations per run.
        restarts: independent random starts; each example keeps the run with
            the highest loss (lowest for ``targeted``).
        rand_init: start from a uniform point in the eps ball (Madry's PGD);
            False gives the basic iterative method.
        generator: draws the random starts (on x's device); None uses torch's
            global RNG, as cleverhans does.
        gradient: ``f(model, x_adv, y) -> d loss / d x_adv``; see ``loss_gradient``.
        eot_samples: average the gradient over this many forward passes per
            step (``eot_gradient``), for a randomised defence; 1 is plain PGD.

    Returns:
        (B, ...) adversarial examples in [0, 1], within eps of x, detached.
    """
    y = _check(model, x, y, eps, step if eps > 0 else None)
    if steps < 0 or restarts < 1:
        raise ValueError(f"steps must be >= 0 and restarts >= 1, got steps={steps}, restarts={restarts}")
    if eps == 0 or steps == 0 and not rand_init:
        return x.detach().clone()
    x = x.detach()
    if eot_samples != 1:
        gradient = eot_gradient(gradient, eot_samples)
    sign = -1.0 if targeted else 1.0
    best, best_loss = None, None
    with frozen_eval(model):
        for _ in range(restarts):
            eta = (torch.empty_like(x).uniform_(-eps, eps, generator=generator) if rand_init
                   else torch.zeros_like(x))
            adv = (x + clip_eta(eta, np.inf, eps)).clamp(0, 1)
            for _ in range(steps):
                adv = adv + optimize_linear(sign * gradient(model, adv, y), step, np.inf)
                adv = (x + clip_eta(adv.clamp(0, 1) - x, np.inf, eps)).clamp(0, 1)
            adv = _finish(x, adv, eps)
            if restarts == 1:
                return adv
            with torch.no_grad():
                loss = sign * F.cross_entropy(model(adv), y, reduction="none")
            if best is None:
                best, best_loss = adv, loss
            else:
                better = loss > best_loss
                best = torch.where(better.view(-1, *[1] * (x.ndim - 1)), adv, best)
                best_loss = torch.where(better, loss, best_loss)
    return best


def cw_l2(model: nn.Module, x: torch.Tensor, y, n_classes: int = 10, targeted: bool = False,
          confidence: float = 0.0, lr: float = 5e-3, binary_search_steps: int = 5,
          max_iterations: int = 100, initial_const: float = 1e-2) -> torch.Tensor:
    """Carlini-Wagner L2 attack through cleverhans: the smallest L2 change that flips the label.

    No eps budget: measure ``(adv - x).flatten(1).norm(dim=1)``. Inputs whose
    label cannot be flipped come back unchanged.
    """
    y = _check(model, x, y)
    with frozen_eval(model):
        adv = carlini_wagner_l2(model, x, n_classes, y=y, targeted=targeted, lr=lr, confidence=confidence,
                                clip_min=0.0, clip_max=1.0, initial_const=initial_const,
                                binary_search_steps=binary_search_steps, max_iterations=max_iterations)
    return adv.detach().to(x.dtype).clamp(0, 1)


def spsa(model: nn.Module, x: torch.Tensor, y, eps: float, steps: int = 40, samples: int = 64,
         lr: float | None = None, delta: float = 0.01) -> torch.Tensor:
    """SPSA (Uesato et al.): a gradient-free L-infinity attack through cleverhans.

    It estimates gradients from ``samples`` random finite differences (of size
    ``delta``) per step and moves with Adam at learning rate ``lr`` (default
    eps / 4: cleverhans's fixed 0.01 needs about 30 steps just to cross an
    eps-0.3 ball, and left an undefended MNIST CNN at 69% where PGD leaves 0%).
    Each example stops once it is misclassified. It sees only the model's
    outputs: if it beats the white-box PGD, the model's gradients are hiding
    something (gradient masking).
    """
    y = _check(model, x, y, eps)
    if eps == 0:
        return x.detach().clone()
    lr = eps / 4 if lr is None else lr
    if lr <= 0 or steps < 1 or samples < 1:
        raise ValueError(f"need lr > 0, steps >= 1 and samples >= 1, got lr={lr}, steps={steps}, samples={samples}")
    with frozen_eval(model):
        adv = cleverhans_spsa(model, x, eps, steps, norm=np.inf, clip_min=0.0, clip_max=1.0, y=y,
                              learning_rate=lr, delta=delta, spsa_samples=samples, sanity_checks=False,
                              early_stop_loss_threshold=0.0)
    return _finish(x, adv, eps)


def fast_fgsm(model: nn.Module, x: torch.Tensor, y, eps: float, alpha: float,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """FGSM from a uniform random start (Wong et al., 2020): one step of ``alpha``, projected to eps.

    The step is written out rather than delegated: cleverhans's attacks refuse
    a step larger than eps, and this method's usual step (1.25 eps) is exactly
    that. Like every attack here, it runs with the model frozen and in eval mode.
    Returns detached examples in [0, 1] within eps of ``x``.
    """
    y = _check(model, x, y, eps)
    if alpha <= 0:
        raise ValueError(f"alpha (the step) must be positive, got {alpha}")
    if eps == 0:
        return x.detach().clone()
    x = x.detach()
    start = (x + torch.empty_like(x).uniform_(-eps, eps, generator=generator)).clamp(0, 1)
    with frozen_eval(model):
        grad = loss_gradient(model, start, y)
    adv = start + optimize_linear(grad, alpha, np.inf)
    return _finish(x, adv, eps)


# Attack recipes: an attack with its settings, called as ``attack(model, x, y, generator=None)``.
# Batch makers, cached adversarial datasets and evaluation tables take these, so
# that the settings travel with the attack (and into cache keys).

@dataclass(frozen=True)
class FGSMAttack:
    """``fgsm`` at ``eps``."""

    eps: float

    def __call__(self, model, x, y, generator=None):
        return fgsm(model, x, y, self.eps)


@dataclass(frozen=True)
class PGDAttack:
    """``pgd`` at ``eps`` with ``steps`` steps of ``step`` (capped at eps) and ``restarts`` random starts."""

    eps: float
    step: float
    steps: int
    restarts: int = 1

    def __call__(self, model, x, y, generator=None):
        return pgd(model, x, y, self.eps, min(self.step, self.eps), self.steps, restarts=self.restarts,
                   generator=generator)


@dataclass(frozen=True)
class FastFGSMAttack:
    """``fast_fgsm`` at ``eps`` with step ``alpha_ratio * eps`` (Wong et al. use 1.25)."""

    eps: float
    alpha_ratio: float = 1.25

    def __call__(self, model, x, y, generator=None):
        return fast_fgsm(model, x, y, self.eps, self.alpha_ratio * self.eps, generator=generator)
