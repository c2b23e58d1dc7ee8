"""Oblivious against adaptive evaluation of a defence (Athalye et al. 2018; Tramer et al. 2020).

An *oblivious* attack ignores the defence: PGD examples made against the
undefended classifier and handed to the defended model (transfer). A *naive
white-box* attack runs PGD on the defended model as it is, so a rounding layer
gives it zero gradients and randomisation gives it noisy ones. An *adaptive*
attack accounts for the defence: BPDA through a non-differentiable layer
(``attack_view``), the expectation over the randomness (``eot_samples``), or
end-to-end gradients through a denoiser. The reported adaptive accuracy is the
per-example worst case over all three attacks, as a careful evaluation reports it.
"""
from __future__ import annotations

import torch
from torch import nn

from .attacks import pgd, predict


def _correct(model: nn.Module, adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return predict(model, adv) == y


def adaptive_evaluation(defended: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, source: nn.Module,
                        attack_view: nn.Module | None = None, eot_samples: int = 1, steps: int = 40,
                        seed: int = 0) -> dict[str, float]:
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

    Returns ``{"clean", "oblivious", "white-box", "adaptive"}``; "adaptive" counts an
    example as robust only if it survives all three attacks.
    """
    step = 2.5 * eps / steps

    def attack(model: nn.Module, eot: int = 1) -> torch.Tensor:
        generator = torch.Generator(device=x.device).manual_seed(seed)
        return pgd(model, x, y, eps, step, steps, generator=generator, eot_samples=eot)

    clean = _correct(defended, x, y)
    transfer = _correct(defended, attack(source), y)
    white_box = _correct(defended, attack(defended), y)
    adaptive = _correct(defended, attack(attack_view or defended, eot_samples), y)
    share = lambda mask: 100.0 * mask.float().mean().item()  # noqa: E731
    return {"clean": share(clean), "oblivious": share(transfer), "white-box": share(white_box),
            "adaptive": share(transfer & white_box & adaptive)}
