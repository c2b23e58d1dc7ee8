"""Zoo recipes of the inference-time defences (Defendr part 2, chapters 7-8), all around the MNIST CNN.

- ``mnist_dunet`` (and ``_pixel``, ``_logit``, ``_label``): HGD's denoiser trained
  in front of the fixed baseline, one recipe per guided loss (feature-guided, at
  the last convolution's output, is the default, as in HGD's best model); the zoo model is the denoiser and the
  classifier together, one module from pixels to logits.
- ``mnist_dunet_fgsm_012``, ``_fgsm_030``, ``_pgd_012``, ``_pgd_030``: the
  feature-guided denoiser trained on one attack at one eps only (Defendr's Table 4).
- ``mnist_random_resize_pad``: the baseline behind random resizing and padding
  (a new draw for every image at every forward pass).
- ``mnist_bit_depth``: the baseline behind 1-bit squeezing.
- ``mnist_ensemble``: the denoiser model, ALP and CLP, scores normalised and summed.

The last three train nothing (``epochs`` 0): the zoo assembles them from the
trained components. The Table 4 denoisers store the zoo's default metric, clean
test accuracy; the others also store AutoAttack at eps 0.3 on the first test
digits (``defence_metrics``: the ``rand`` version for the random resizing), which
takes minutes on a CPU and so is run once, at build time. Chapters 7 and 8 measure
them under attack, obliviously and adaptively, and read AutoAttack from here.
"""
from __future__ import annotations

import torch

from ..attacks import FGSMAttack, PGDAttack
from ..config import AutoAttackBudget, get_profile
from ..data.mnist import mnist_splits
from ..evaluation import accuracy, accuracy_of_digits, autoattack_digits
from ..defences import BitDepth, Denoised, DUNet, Ensemble, Preprocessed, Randomised, RandomResizePad
from ..train.batches import DenoiserPairs
from ..train.objectives import FeatureGuided, LabelGuided, LogitGuided, PixelGuided
from ..train.recipes import Plan, Recipe, register
from .mnist_cnn import CNN_FULL, CNN_QUICK, MnistCNN

# HGD's feature-guided loss compares the topmost convolutional layer's output (its l = -2): here
# conv2, the baseline's last convolution (before its ReLU and pooling).
GUIDES = {"feature": FeatureGuided("conv2"), "pixel": PixelGuided(), "logit": LogitGuided(),
          "label": LabelGuided()}

# quick: a narrow, one-block-per-stage U-Net; full: HGD's widths and depths. Both train on Defendr's
# budgets (its section 5: FGSM and PGD at eps 0.06, 0.12 and 0.3). In quick each digit gets one FGSM
# and one PGD twin, the budgets taking turns (as chapter 6's augmentations; the cost of one budget); in
# full every digit gets all six. PGD: in quick 5 steps of eps / 3 at each budget, in full 40 of 0.01.
DEFENDR_EPS = (0.06, 0.12, 0.3)
DUNET_QUICK = dict(epochs=1, batch_size=64, optimizer="Adam", lr=1e-3, guide="feature",
                   encoder_widths=(16, 32, 32, 32, 32), encoder_blocks=(1, 1, 1, 1, 1),
                   decoder_widths=(16, 32, 32, 32), decoder_blocks=(1, 1, 1, 1),
                   fgsm_eps=DEFENDR_EPS, pgd_eps=DEFENDR_EPS, pgd_step=None, pgd_steps=5, budgets_take_turns=True,
                   **CNN_QUICK)
DUNET_FULL = dict(DUNET_QUICK, epochs=10, encoder_widths=(64, 128, 256, 256, 256), encoder_blocks=(2, 3, 3, 3, 3),
                  decoder_widths=(64, 128, 256, 256), decoder_blocks=(2, 3, 3, 3), pgd_step=0.01, pgd_steps=40,
                  budgets_take_turns=False, **CNN_FULL)


def defence_metrics(model, splits, settings: dict) -> dict:
    """Clean test accuracy, and AutoAttack at eps 0.3 on the first ``autoattack_eval_size`` test digits.

    ``autoattack_version``: "standard", or "rand" for a randomised defence; the
    profile's budget (``autoattack_targets``, ``autoattack_queries``) for "standard". Keys as
    ``mnist_cnn.robust_metrics``'s: the accuracy and the verdict per digit.
    """
    device = next(model.parameters()).device
    x, y = (t.to(device) for t in splits.test.tensors)
    n = min(settings["autoattack_eval_size"], len(x))
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(0)  # a randomised defence draws from torch's RNG
        clean = accuracy(model, x, y)
    digits = autoattack_digits(model, x[:n], y[:n], 0.3, version=settings["autoattack_version"],
                               budget=AutoAttackBudget.of(settings))
    return {"test_acc": clean, "autoattack_eval_size": n, "autoattack_version": settings["autoattack_version"],
            "autoattack_eps0.3_acc": accuracy_of_digits(digits), "autoattack_eps0.3_digits": digits}


# AutoAttack's digits at build time: the first 100 test digits in quick (chapter 7's tables), 30 for the
# assembled defences (chapter 8: on 60 digits, bit depth, random resizing and the ensemble took 40-55 s
# each on 2 CPU cores, almost all of it AutoAttack); 1000 in full.
AUTOATTACK_QUICK = dict(autoattack_eval_size=100, autoattack_version="standard",
                        **get_profile("quick").autoattack_settings())
AUTOATTACK_FULL = dict(autoattack_eval_size=1000, autoattack_version="standard",
                       **get_profile("full").autoattack_settings())
ASSEMBLED_AUTOATTACK_QUICK = dict(AUTOATTACK_QUICK, autoattack_eval_size=30)


def build_denoised(settings: dict) -> Denoised:
    """A fresh DUNet of the settings' sizes in front of a fresh MnistCNN (the zoo loads the baseline into it)."""
    dunet = DUNet(1, settings["encoder_widths"], settings["encoder_blocks"], settings["decoder_widths"],
                  settings["decoder_blocks"])
    return Denoised(dunet, MnistCNN(settings["width"]))


def denoiser_plan(settings: dict, splits, data_home) -> Plan:
    """The guided loss of ``settings["guide"]`` on FGSM and PGD pairs at their budgets, made against the baseline.

    ``fgsm_eps`` and ``pgd_eps``: the budgets of each attack (either may be
    empty). ``pgd_step`` None: eps / 3 at each budget. ``budgets_take_turns``:
    one twin per digit and attack, its budget taking turns; otherwise one twin
    per digit, attack and budget.
    """
    fgsm = [FGSMAttack(eps) for eps in settings["fgsm_eps"]]
    pgd = [PGDAttack(eps, settings["pgd_step"] or round(eps / 3, 4), settings["pgd_steps"])
           for eps in settings["pgd_eps"]]
    if settings["budgets_take_turns"]:  # (a group of one budget is that attack alone)
        attacks = [group if len(group) > 1 else group[0] for group in (fgsm, pgd) if group]
    else:
        attacks = fgsm + pgd
    return Plan(objective=GUIDES[settings["guide"]], batches=DenoiserPairs(attacks, data_home / "adversarial"))


for guide in GUIDES:
    register(Recipe(
        name="mnist_dunet" if guide == "feature" else f"mnist_dunet_{guide}",
        summary=f"HGD denoiser ({guide}-guided) in front of the fixed baseline",
        build=build_denoised, data=mnist_splits, plan=denoiser_plan,
        quick=dict(DUNET_QUICK, guide=guide, **AUTOATTACK_QUICK),
        full=dict(DUNET_FULL, guide=guide, **AUTOATTACK_FULL), evaluate=defence_metrics,
        components={"classifier": "mnist_baseline"}))

# Defendr's Table 4: the feature-guided DUNet trained on one attack at one budget only
# (``mnist_dunet_fgsm_012`` ... ``mnist_dunet_pgd_030``), to test it on the other attack.
# PGD as ``mnist_dunet``'s: in quick, 5 steps of eps / 3; in full, 40 of 0.01.
TABLE4_TRAINING = {f"{attack}_{round(eps * 100):03d}": (attack, eps)
                   for attack in ("fgsm", "pgd") for eps in (0.12, 0.3)}


def _trained_on(base: dict, attack: str, eps: float) -> dict:
    return dict(base, fgsm_eps=(eps,) if attack == "fgsm" else (), pgd_eps=(eps,) if attack == "pgd" else ())


for suffix, (attack, eps) in TABLE4_TRAINING.items():
    register(Recipe(
        name=f"mnist_dunet_{suffix}", summary=f"HGD denoiser (feature-guided) trained on {attack.upper()} {eps} "
                                              "pairs only, in front of the fixed baseline (Defendr Table 4)",
        build=build_denoised, data=mnist_splits, plan=denoiser_plan,
        quick=_trained_on(DUNET_QUICK, attack, eps), full=_trained_on(DUNET_FULL, attack, eps),
        components={"classifier": "mnist_baseline"}))

ASSEMBLED = dict(epochs=0, batch_size=64, optimizer="Adam", lr=0.0, **CNN_QUICK)  # full: CNN_FULL



register(Recipe(
    name="mnist_random_resize_pad", summary="baseline behind random resizing and padding (Xie et al.)",
    build=lambda settings: Randomised(MnistCNN(settings["width"]), RandomResizePad(28, settings["low"],
                                                                  per_image=settings["per_image"])),
    data=mnist_splits,
    quick=dict(ASSEMBLED, low=25, per_image=True, **dict(ASSEMBLED_AUTOATTACK_QUICK, autoattack_version="rand")),
    full=dict(ASSEMBLED, low=25, per_image=True, **dict(AUTOATTACK_FULL, autoattack_version="rand"), **CNN_FULL),
    evaluate=defence_metrics, components={"model": "mnist_baseline"}))

register(Recipe(
    name="mnist_bit_depth", summary="baseline behind 1-bit depth reduction (Xu et al.)",
    build=lambda settings: Preprocessed(BitDepth(settings["bits"]), MnistCNN(settings["width"])), data=mnist_splits,
    quick=dict(ASSEMBLED, bits=1, **ASSEMBLED_AUTOATTACK_QUICK), full=dict(ASSEMBLED, bits=1, **AUTOATTACK_FULL, **CNN_FULL),
    evaluate=defence_metrics, components={"model": "mnist_baseline"}))

register(Recipe(
    name="mnist_ensemble", summary="ensemble of the denoiser model, ALP and CLP (Defendr 4.4)",
    build=lambda settings: Ensemble([build_denoised(DUNET_QUICK if settings["dunet"] == "quick" else DUNET_FULL),
                                     MnistCNN(settings["width"]), MnistCNN(settings["width"])]),
    data=mnist_splits, quick=dict(ASSEMBLED, dunet="quick", **ASSEMBLED_AUTOATTACK_QUICK),
    full=dict(ASSEMBLED, dunet="full", **AUTOATTACK_FULL, **CNN_FULL), evaluate=defence_metrics,
    components={"members.0": "mnist_dunet", "members.1": "mnist_alp",
                                         "members.2": "mnist_clp"}))
