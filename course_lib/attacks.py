"""Adversarial attacks: thin, safe wrappers over cleverhans's and torchattacks's PyTorch attacks.

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
  from a ``torch.Generator`` the caller owns;
* ``autoattack`` and ``square`` run torchattacks's APGD, APGD-T, FAB-T and
  Square with AutoAttack's published settings (torchattacks's own ``AutoAttack``
  runs 10 iterations where Croce and Hein run 100), and keep torch's global
  RNG as it was (torchattacks reseeds it on every call).
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

from .config import AutoAttackBudget, show_progress
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
    n_classes = _n_classes(model, x)
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"labels must be in [0, {n_classes - 1}], got [{int(y.min())}, {int(y.max())}]")
    return y


def _n_classes(model: nn.Module, x: torch.Tensor) -> int:
    """The number of logits the model gives for ``x[:1]``; a clear error when it cannot take x."""
    try:
        with torch.no_grad(), frozen_eval(model):
            logits = model(x[:1])
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"the model cannot take x of shape {tuple(x.shape)} ({err}); attacks give the "
                         "model pixels in [0, 1] shaped like its training images") from err
    if logits.ndim != 2:
        raise ValueError(f"the model must return (B, classes) logits, got shape {tuple(logits.shape)}")
    return logits.shape[1]


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


# -- AutoAttack (Croce and Hein, 2020) through torchattacks ---------------------------------

AUTOATTACK_STEPS = 100  # APGD-CE, APGD-T and FAB-T iterations in Croce and Hein's AutoAttack
AUTOATTACK_QUERIES = AutoAttackBudget.queries  # Square's query budget in AutoAttack (target classes: the budget's)
AUTOATTACK_EOT = 20  # version "rand": gradients averaged over 20 draws of a randomised defence


def _check_autoattack(model, x, y, eps, norm) -> torch.Tensor:
    """The kit's checks, and what torchattacks's attacks need: (B, C, H, W) float32 images, long labels."""
    if norm not in ("Linf", "L2"):
        raise ValueError(f"norm must be 'Linf' or 'L2', got {norm!r}")
    if not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps <= 0:
        raise ValueError(f"eps must be a finite number > 0 (pixel units: 0.3 on MNIST for Linf), got {eps}")
    y = _check(model, x, y, eps)
    if x.ndim != 4 or x.dtype != torch.float32:
        raise ValueError(f"AutoAttack and Square take (B, C, H, W) float32 images, got {tuple(x.shape)} "
                         f"{x.dtype}; add a channel dimension or convert with x.float()")
    return y.long()


def _project(x: torch.Tensor, adv: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Detach; project onto the eps ball of ``norm`` around x and onto [0, 1]."""
    if norm == "Linf":
        return _finish(x, adv, eps)
    delta = adv.detach().to(x.dtype) - x
    norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (x.ndim - 1))
    return (x + delta * torch.clamp(eps / norms, max=1.0)).clamp(0, 1)


def autoattack_stages(model: nn.Module, eps: float, norm: str = "Linf", version: str = "standard",
                      n_classes: int = 10, seed: int = 0, budget: AutoAttackBudget | None = None) -> dict:
    """AutoAttack's attacks in the order it runs them: {name: torchattacks attack}.

    ``standard`` (deterministic models): APGD-CE, APGD-T, FAB-T (100 iterations,
    ``budget.targets`` target classes each) and Square (``budget.queries``
    queries); the default budget is Croce and Hein's (9 and 5,000). ``rand``
    (randomised defences): APGD-CE and APGD-DLR, each averaging its gradient over
    20 draws (no budget applies). Built here rather than taken from
    ``torchattacks.AutoAttack``, which runs 10 iterations (torchattacks's
    defaults) where Croce and Hein run 100.
    """
    import torchattacks

    if version not in ("standard", "rand"):
        raise ValueError(f"version must be 'standard' or 'rand', got {version!r}")
    needed = 4 if version == "standard" else 3  # the targeted DLR loss reads the 4th-highest logit
    if n_classes < needed:
        raise ValueError(f"AutoAttack ({version}) needs at least {needed} classes (its DLR losses compare the "
                         f"top logits), the model has {n_classes}; use pgd or square for it")
    budget = budget or AutoAttackBudget()
    # torchattacks's targeted attacks take n_classes and attack the n_classes - 1 highest others
    targets = min(budget.targets, n_classes - 1) + 1
    common = dict(eps=eps, norm=norm, seed=seed, n_restarts=1)
    if version == "rand":
        return {"APGD-CE": torchattacks.APGD(model, steps=AUTOATTACK_STEPS, loss="ce", eot_iter=AUTOATTACK_EOT, **common),
                "APGD-DLR": torchattacks.APGD(model, steps=AUTOATTACK_STEPS, loss="dlr", eot_iter=AUTOATTACK_EOT,
                                              **common)}
    return {"APGD-CE": torchattacks.APGD(model, steps=AUTOATTACK_STEPS, loss="ce", **common),
            "APGD-T": torchattacks.APGDT(model, steps=AUTOATTACK_STEPS, n_classes=targets, **common),
            "FAB-T": torchattacks.FAB(model, steps=AUTOATTACK_STEPS, multi_targeted=True, n_classes=targets,
                                      **common),
            # resc_schedule=False: Square's square sizes shrink on the schedule written for 10,000
            # queries, as in AutoAttack (torchattacks rescales it to n_queries by default)
            "Square": torchattacks.Square(model, n_queries=budget.queries, p_init=0.8, resc_schedule=False,
                                          **common)}


def _rng_kept(device: torch.device):
    """torch's global RNGs put back after the block (torchattacks reseeds them on every call).

    torchattacks also reseeds the *current* CUDA device, which may not be ``device``.
    """
    devices = {device} if device.type == "cuda" else set()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        devices.add(torch.device("cuda", torch.cuda.current_device()))
    return torch.random.fork_rng(devices=sorted(devices, key=str))


def _run_autoattack(model, x, y, eps, norm, version, seed, batch_size, progress, budget):
    """(adversarial batch, (B,) bool still robust, {stage: count standing}) of one AutoAttack run."""
    from tqdm.auto import tqdm

    y = _check_autoattack(model, x, y, eps, norm)
    n_classes = _n_classes(model, x)
    x = x.detach()
    adv = x.clone()
    robust = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    counts = {"clean": 0}
    with frozen_eval(model), _rng_kept(x.device):
        attacks = autoattack_stages(model, eps, norm, version, n_classes, seed, budget)
        counts.update({name: 0 for name in attacks})
        for start in tqdm(range(0, len(x), batch_size), desc=f"AutoAttack ({version})", leave=False,
                          disable=not show_progress(progress) or len(x) <= batch_size):
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            with torch.no_grad():
                standing = model(xb).argmax(1) == yb
            counts["clean"] += int(standing.sum())
            for name, attack in attacks.items():
                idx = standing.nonzero().squeeze(1)
                if len(idx):
                    attempt = _project(xb[idx], attack(xb[idx], yb[idx]), eps, norm)
                    adv[start + idx] = attempt
                    with torch.no_grad():
                        standing[idx] = model(attempt).argmax(1) == yb[idx]
                counts[name] += int(standing.sum())
            robust[start:start + len(xb)] = standing
    return adv, robust, counts


def autoattack(model: nn.Module, x: torch.Tensor, y, eps: float, norm: str = "Linf",
               version: str = "standard", seed: int = 0, batch_size: int = 256,
               progress: bool | None = None, stages: dict | None = None,
               budget: AutoAttackBudget | None = None) -> torch.Tensor:
    """AutoAttack (Croce and Hein, 2020): an image is robust only if every one of its attacks fails.

    The attacks run one after another (``autoattack_stages``), each on the images
    still classified correctly; an image the model already gets wrong is not
    attacked. Same contract as the kit's other attacks: true labels, pixels in
    [0, 1], the model frozen in eval mode and handed back as it came, torch's RNG
    untouched (the attacks draw from their own seed).

    Args:
        x: (B, C, H, W) float32 pixels in [0, 1]; y: (B,) true labels.
        eps: budget in pixel units (> 0): 0.3 for Linf on MNIST.
        norm: "Linf" or "L2". version: "standard" (at least 4 classes) or "rand"
            (randomised defences, at least 3 classes).
        batch_size: images attacked at once. progress: a bar over batches
            (None follows COURSE_PROGRESS).
        stages: when a dict, filled with {attack name: images still standing after
            it} (counts over the whole batch, in run order, after "clean").
        budget: target classes and Square queries (``config.AutoAttackBudget``);
            None is Croce and Hein's standard run. A profile's is
            ``get_profile(PROFILE).autoattack`` (``quick`` tries less).

    Returns:
        (B, C, H, W) adversarial examples, detached, within eps of x and in [0, 1];
        an image no attack broke comes back as the last attack returned it
        (torchattacks's Square returns such an image unchanged).
    """
    adv, _, counts = _run_autoattack(model, x, y, eps, norm, version, seed, batch_size, progress, budget)
    if stages is not None:
        stages.update(counts)
    return adv


def autoattack_robust(model: nn.Module, x: torch.Tensor, y, eps: float, norm: str = "Linf",
                      version: str = "standard", seed: int = 0, batch_size: int = 256,
                      progress: bool | None = None, budget: AutoAttackBudget | None = None) -> torch.Tensor:
    """(B,) bool: the images AutoAttack counts as robust (every attack failed on them).

    The verdict of the run itself, as AutoAttack reports it: for a randomised
    model, scoring the returned examples again would be a new random draw.
    """
    return _run_autoattack(model, x, y, eps, norm, version, seed, batch_size, progress, budget)[1]


def square(model: nn.Module, x: torch.Tensor, y, eps: float, queries: int = AUTOATTACK_QUERIES,
           norm: str = "Linf", seed: int = 0, p_init: float = 0.8) -> torch.Tensor:
    """Square attack (Andriushchenko et al., 2020): random square-shaped changes, kept when they help.

    Gradient-free: it sees only the model's outputs, so a model that hides its
    gradients (rounding, randomness, saturation) does not hide from it. Stops for
    each image once it is misclassified, after at most ``queries`` queries. Same
    contract as ``autoattack`` (eps > 0, the model handed back as it came, torch's
    RNG untouched; its random squares come from ``seed``). The square sizes shrink
    on a schedule rescaled to ``queries`` (torchattacks's default, which suits the
    checklist's 1,000 queries); AutoAttack's own Square keeps the unscaled one.
    """
    import torchattacks

    y = _check_autoattack(model, x, y, eps, norm)
    if queries < 1:
        raise ValueError(f"queries must be >= 1, got {queries}")
    if norm == "L2" and min(x.shape[-2:]) < 5:  # torchattacks divides by side // 5 there
        raise ValueError(f"Square's L2 version needs images of at least 5 x 5 pixels, got "
                         f"{tuple(x.shape[-2:])}; use norm='Linf' or larger images")
    x = x.detach()
    with frozen_eval(model), _rng_kept(x.device):
        attack = torchattacks.Square(model, eps=eps, norm=norm, n_queries=queries, p_init=p_init, seed=seed,
                                     n_restarts=1)
        return _project(x, attack(x, y), eps, norm)
