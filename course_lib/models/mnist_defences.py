"""Zoo recipes of the inference-time defences (Defendr part 2, chapters 7-8), all around the MNIST CNN.

- ``mnist_dunet`` (and ``_pixel``, ``_logit``, ``_label``): HGD's denoiser trained
  in front of the fixed baseline, one recipe per guided loss (feature-guided is
  the default, as in HGD's best model); the zoo model is the denoiser and the
  classifier together, one module from pixels to logits.
- ``mnist_random_resize_pad``: the baseline behind random resizing and padding
  (a new draw at every forward pass).
- ``mnist_bit_depth``: the baseline behind 1-bit squeezing.
- ``mnist_ensemble``: the denoiser model, ALP and CLP, scores normalised and summed.

The last three train nothing (``epochs`` 0): the zoo assembles them from the
trained components. Every entry stores the zoo's default metric, clean test
accuracy: chapters 7 and 8 measure them under attack, obliviously and adaptively.
"""
from __future__ import annotations

from ..attacks import FGSMAttack, PGDAttack
from ..data.mnist import mnist_splits
from ..defences import BitDepth, Denoised, DUNet, Ensemble, Preprocessed, Randomised, RandomResizePad
from ..train.batches import DenoiserPairs
from ..train.objectives import FeatureGuided, LabelGuided, LogitGuided, PixelGuided
from ..train.recipes import Plan, Recipe, register
from .mnist_cnn import MnistCNN

GUIDES = {"feature": FeatureGuided("fc1"), "pixel": PixelGuided(), "logit": LogitGuided(),
          "label": LabelGuided()}

# quick: a narrow, one-block-per-stage U-Net; full: HGD's widths and depths.
DUNET_QUICK = dict(epochs=2, batch_size=64, optimizer="Adam", lr=1e-3, guide="feature",
                   encoder_widths=(16, 32, 32, 32, 32), encoder_blocks=(1, 1, 1, 1, 1),
                   decoder_widths=(16, 32, 32, 32), decoder_blocks=(1, 1, 1, 1),
                   fgsm_eps=(0.3,), pgd_eps=0.3, pgd_step=0.1, pgd_steps=5)
DUNET_FULL = dict(DUNET_QUICK, epochs=10, encoder_widths=(64, 128, 256, 256, 256), encoder_blocks=(2, 3, 3, 3, 3),
                  decoder_widths=(64, 128, 256, 256), decoder_blocks=(2, 3, 3, 3), fgsm_eps=(0.1, 0.2, 0.3),
                  pgd_step=0.01, pgd_steps=40)


def build_denoised(settings: dict) -> Denoised:
    """A fresh DUNet of the settings' sizes in front of a fresh MnistCNN (the zoo loads the baseline into it)."""
    dunet = DUNet(1, settings["encoder_widths"], settings["encoder_blocks"], settings["decoder_widths"],
                  settings["decoder_blocks"])
    return Denoised(dunet, MnistCNN())


def denoiser_plan(settings: dict, splits, data_home) -> Plan:
    """The guided loss of ``settings["guide"]`` on FGSM pairs at each eps and PGD pairs, made against the baseline."""
    attacks = [FGSMAttack(eps) for eps in settings["fgsm_eps"]]
    attacks.append(PGDAttack(settings["pgd_eps"], settings["pgd_step"], settings["pgd_steps"]))
    return Plan(objective=GUIDES[settings["guide"]], batches=DenoiserPairs(attacks, data_home / "adversarial"))


for guide in GUIDES:
    register(Recipe(
        name="mnist_dunet" if guide == "feature" else f"mnist_dunet_{guide}",
        summary=f"HGD denoiser ({guide}-guided) in front of the fixed baseline",
        build=build_denoised, data=mnist_splits, plan=denoiser_plan,
        quick=dict(DUNET_QUICK, guide=guide), full=dict(DUNET_FULL, guide=guide),
        components={"classifier": "mnist_baseline"}))

ASSEMBLED = dict(epochs=0, batch_size=64, optimizer="Adam", lr=0.0)



register(Recipe(
    name="mnist_random_resize_pad", summary="baseline behind random resizing and padding (Xie et al.)",
    build=lambda settings: Randomised(MnistCNN(), RandomResizePad(28, settings["low"])), data=mnist_splits,
    quick=dict(ASSEMBLED, low=25), full=dict(ASSEMBLED, low=25),
    components={"model": "mnist_baseline"}))

register(Recipe(
    name="mnist_bit_depth", summary="baseline behind 1-bit depth reduction (Xu et al.)",
    build=lambda settings: Preprocessed(BitDepth(settings["bits"]), MnistCNN()), data=mnist_splits,
    quick=dict(ASSEMBLED, bits=1), full=dict(ASSEMBLED, bits=1),
    components={"model": "mnist_baseline"}))

register(Recipe(
    name="mnist_ensemble", summary="ensemble of the denoiser model, ALP and CLP (Defendr 4.4)",
    build=lambda settings: Ensemble([build_denoised(DUNET_QUICK if settings["dunet"] == "quick" else DUNET_FULL),
                                     MnistCNN(), MnistCNN()]),
    data=mnist_splits, quick=dict(ASSEMBLED, dunet="quick"), full=dict(ASSEMBLED, dunet="full"),
    components={"members.0": "mnist_dunet", "members.1": "mnist_alp",
                                         "members.2": "mnist_clp"}))
