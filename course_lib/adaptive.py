"""Oblivious against adaptive evaluation of a defence (Athalye et al. 2018; Tramer et al. 2020).

An *oblivious* attack ignores the defence: PGD examples made against the
undefended classifier and handed to the defended model (transfer). A *naive
white-box* attack runs PGD on the defended model as it is, so a rounding layer
gives it zero gradients and randomisation gives it noisy ones. An *adaptive*
attack accounts for the defence: BPDA through a non-differentiable layer
(``attack_view``), the expectation over the randomness (``eot_samples``), or
end-to-end gradients through a denoiser. The reported adaptive accuracy is the
per-example worst case over all three attacks, as a careful evaluation reports it.

A randomised defence answers differently at every call, so one call per example
mixes the attack's effect with the defence's own noise. With ``draws`` > 1 each
attack's examples are scored ``draws`` times: an example's score is the share of
draws that classify it correctly, a column's number is the expected accuracy
over draws, and the spread of the per-draw accuracies is reported beside it,
with the single-call rule's number computed from the first draw (" one call").
"""
from __future__ import annotations

import torch
from torch import nn

from .attacks import pgd, predict
from .evaluation import percent


def _draw_correct(model: nn.Module, adv: torch.Tensor, y: torch.Tensor, draws: int) -> torch.Tensor:
    """(draws, N) bool: whether each of ``draws`` calls of the model classifies each example correctly."""
    return torch.stack([predict(model, adv) == y for _ in range(draws)])


def _attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int, seed: int,
            eot_samples: int = 1) -> torch.Tensor:
    """PGD of ``steps`` steps of 2.5 eps / steps from a random start drawn by a generator seeded with ``seed``."""
    generator = torch.Generator(device=x.device).manual_seed(seed)
    return pgd(model, x, y, eps, 2.5 * eps / steps, steps, generator=generator, eot_samples=eot_samples)


def transfer_examples(source: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int = 40,
                      seed: int = 0) -> torch.Tensor:
    """The oblivious attack's (N, C, H, W) examples: PGD on the undefended ``source``, as ``adaptive_evaluation`` makes them."""
    return _attack(source, x, y, eps, steps, seed)


def adaptive_evaluation(defended: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, source: nn.Module,
                        attack_view: nn.Module | None = None, eot_samples: int = 1, steps: int = 40,
                        seed: int = 0, draws: int = 1, transfer: torch.Tensor | None = None) -> dict:
    """Accuracy in % of ``defended`` under the oblivious, the naive white-box and the adaptive attack.

    Args:
        defended: the defence, pixels in [0, 1] -> logits (it makes every prediction).
        x, y: (N, C, H, W) images in [0, 1] and their labels.
        eps: L-infinity budget; PGD takes ``steps`` steps of 2.5 eps / steps from a random start.
        source: the undefended classifier the oblivious (transfer) examples are made on.
        attack_view: the module whose gradients the adaptive attack follows (``defences.bpda(...)``);
            None attacks ``defended`` itself.
        eot_samples: forward passes averaged per step by the adaptive attack (randomised defences).
        seed: every attack's random start comes from a generator seeded with it.
        draws: calls of ``defended`` that score each attack's examples (and the clean
            images); 1 for a deterministic defence, at least 10 for a randomised one.
        transfer: the oblivious examples when already made (``transfer_examples`` with the
            same ``source``, x, y, eps, steps and seed), to share them across defences.

    Returns ``{"clean", "oblivious", "white-box", "adaptive"}``, each the expected
    accuracy over the draws, and the same keys with " sd": the standard deviation of
    the per-draw accuracies (0 for one draw). "adaptive" scores each example by its
    worst attack (the one whose examples the defence gets right in the fewest draws),
    so a deterministic defence's example counts only if it survives all three attacks.
    With ``draws`` > 1 the keys with " one call" give the single-call rule from the
    first draw alone: each attack's examples judged on one call of the defence, and
    "adaptive" counting an example only if all three of those calls get it right.
    "adaptive per example" lists each example's share of draws (0 to 1) that get it right
    under its worst attack, so that another evaluation on the first k examples (AutoAttack's
    smaller set) can be compared on the same ones: ``mean(r["adaptive per example"][:k])``.
    """
    if draws < 1:
        raise ValueError(f"draws must be at least 1, got {draws}")
    if transfer is None:
        transfer = transfer_examples(source, x, y, eps, steps, seed)
    elif transfer.shape != x.shape:
        raise ValueError(f"transfer must hold one example per image, {tuple(x.shape)}, got {tuple(transfer.shape)}")
    white_box = _attack(defended, x, y, eps, steps, seed)
    # Without a view or EOT the adaptive attack is the white-box one, same start and all: not run twice.
    adaptive_view = attack_view is not None or eot_samples > 1
    adaptive_examples = (_attack(attack_view or defended, x, y, eps, steps, seed, eot_samples)
                         if adaptive_view else white_box)
    scored = {"clean": _draw_correct(defended, x, y, draws),
              "oblivious": _draw_correct(defended, transfer, y, draws),
              "white-box": _draw_correct(defended, white_box, y, draws)}
    adaptive = _draw_correct(defended, adaptive_examples, y, draws)
    attacks = torch.stack([scored["oblivious"], scored["white-box"], adaptive])  # (3, draws, N)
    worst = attacks.float().mean(1).argmin(0)  # (N,) each example's worst attack
    scored["adaptive"] = attacks[worst, :, torch.arange(len(y), device=worst.device)].T  # (draws, N)
    result = {}
    for name, correct in scored.items():
        per_draw = 100.0 * correct.float().mean(1)  # (draws,)
        result[name] = per_draw.mean().item()
        result[f"{name} sd"] = per_draw.std(unbiased=False).item()
    result["adaptive per example"] = scored["adaptive"].float().mean(0).tolist()  # (N,) shares of draws
    if draws > 1:  # the single-call rule, read from the first draw (no attack runs again)
        first = {name: correct[0] for name, correct in scored.items()}
        first["adaptive"] = attacks[:, 0].all(0)
        result.update({f"{name} one call": percent(c) for name, c in first.items()})
    return result
