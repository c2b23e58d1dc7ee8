"""Training objectives: ``(model, batch) -> (loss, metrics)``, one small class per file.

To add one, copy ``cross_entropy.py``: subclass ``Objective`` and write ``__call__``.
"""
from .base import Objective, batch_accuracy
from .cross_entropy import CrossEntropy
from .logit_pairing import AdversarialLogitPairing, CleanLogitPairing
from .logit_squeezing import LogitSqueezing

__all__ = ["AdversarialLogitPairing", "CleanLogitPairing", "CrossEntropy", "LogitSqueezing", "Objective",
           "batch_accuracy"]
