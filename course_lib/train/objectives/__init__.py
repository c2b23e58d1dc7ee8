"""Training objectives: ``(model, batch) -> (loss, metrics)``, one small class per file.

To add one, copy ``cross_entropy.py``: subclass ``Objective`` and write ``__call__``.
"""
from .base import Objective, batch_accuracy
from .cross_entropy import CrossEntropy
from .fusion_heads import FusionHeads
from .guided import FeatureGuided, LabelGuided, LogitGuided, PixelGuided
from .logit_pairing import AdversarialLogitPairing, CleanLogitPairing
from .logit_squeezing import LogitSqueezing
from .masking import MaskingObjective

__all__ = ["AdversarialLogitPairing", "CleanLogitPairing", "CrossEntropy", "FeatureGuided", "FusionHeads", "LabelGuided",
           "LogitGuided", "LogitSqueezing", "MaskingObjective", "Objective", "PixelGuided", "batch_accuracy"]
