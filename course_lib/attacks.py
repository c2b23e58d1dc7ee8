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
* cleverhans's PGD sanity checks compare CUDA tensors with Python floats and
  fail on a GPU; the wrappers check their inputs themselves, with errors that
  say what is wrong.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from cleverhans.torch.attacks.carlini_wagner_l2 import carlini_wagner_l2
from cleverhans.torch.attacks.fast_gradient_method import fast_gradient_method
from cleverhans.torch.attacks.projected_gradient_descent import projected_gradient_descent
from cleverhans.torch.attacks.spsa import spsa as cleverhans_spsa
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


def pgd(model: nn.Module, x: torch.Tensor, y, eps: float, step: float, steps: int,
        restarts: int = 1, rand_init: bool = True, targeted: bool = False) -> torch.Tensor:
    """Projected gradient descent (Madry et al.), L-infinity, through cleverhans.

    Args:
        eps: budget; step: step size in (0, eps]; steps: iterations per run.
        restarts: independent random starts; each example keeps the run with
            the highest loss (lowest for ``targeted``).
        rand_init: start from a uniform point in the eps ball (Madry's PGD);
            False gives the basic iterative method. The start is drawn from
            torch's global RNG, as cleverhans does: seed it for repeatability.

    Returns:
        (B, ...) adversarial examples in [0, 1], within eps of x, detached.
    """
    y = _check(model, x, y, eps, step if eps > 0 else None)
    if steps < 0 or restarts < 1:
        raise ValueError(f"steps must be >= 0 and restarts >= 1, got steps={steps}, restarts={restarts}")
    if eps == 0 or steps == 0 and not rand_init:
        return x.detach().clone()
    best, best_loss = None, None
    with frozen_eval(model):
        for _ in range(restarts):
            adv = projected_gradient_descent(model, x, eps, step, steps, np.inf, clip_min=0.0, clip_max=1.0,
                                             y=y, targeted=targeted, rand_init=rand_init,
                                             sanity_checks=False)
            adv = _finish(x, adv, eps)
            if restarts == 1:
                return adv
            with torch.no_grad():
                loss = F.cross_entropy(model(adv), y, reduction="none")
            loss = -loss if targeted else loss
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


def spsa(model: nn.Module, x: torch.Tensor, y, eps: float, steps: int = 40, samples: int = 128,
         lr: float = 0.01, delta: float = 0.01) -> torch.Tensor:
    """SPSA (Uesato et al.): a gradient-free L-infinity attack through cleverhans.

    It estimates gradients from ``samples`` random finite differences per step,
    so it sees only the model's outputs: if it beats the white-box PGD, the
    model's gradients are hiding something (gradient masking).
    """
    y = _check(model, x, y, eps)
    if eps == 0:
        return x.detach().clone()
    with frozen_eval(model):
        adv = cleverhans_spsa(model, x, eps, steps, norm=np.inf, clip_min=0.0, clip_max=1.0, y=y,
                              learning_rate=lr, delta=delta, spsa_samples=samples, sanity_checks=False)
    return _finish(x, adv, eps)
