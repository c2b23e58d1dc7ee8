"""Evaluation metrics: what ``Engine.measure`` records on the validation and test sets, one class per file.

To add one, copy ``accuracy.py``: subclass ``Metrics`` and write ``__call__``
(and ``lower_is_better`` for the names that improve downwards, such as a loss).
A recipe plugs it in with ``Plan(metrics=..., monitor="val_<name>")``.
"""
from .accuracy import Accuracy
from .base import Metrics
from .head_accuracies import HeadAccuracies
from .mask_quality import MaskQuality

__all__ = ["Accuracy", "HeadAccuracies", "MaskQuality", "Metrics"]
