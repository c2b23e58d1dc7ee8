"""Defences that act at inference (Defendr part 2): a denoiser, randomisation, squeezing, ensembles.

Each is a module from pixels in [0, 1] to logits that wraps trained models;
the zoo registers the trained combinations (``models/mnist_defences.py``).
``bpda`` and ``pgd(..., eot_samples=n)`` (``course_lib.attacks``) attack them
adaptively.
"""
from .dunet import DUNet, Denoised
from .ensemble import Ensemble
from .preprocessed import Preprocessed
from .randomisation import RandomResizePad, Randomised
from .squeezing import BPDA, BitDepth, bpda

__all__ = ["BPDA", "BitDepth", "DUNet", "Denoised", "Ensemble", "Preprocessed", "RandomResizePad", "Randomised",
           "bpda"]
