"""Batch makers: what the model trains on, made from each loaded (x, y). One small class per file.

To add one, copy ``clean.py``: subclass ``BatchMaker`` and write ``__call__``
(and ``dataset`` if the training set itself changes, as in ``static.py``).
"""
from .attack import AttackBatches
from .base import BatchMaker
from .clean import CleanBatches
from .denoiser_pairs import DenoiserPairs
from .frozen_features import DictDataset, FrozenFeatures
from .object_crops import ObjectCrops
from .static import StaticAugmentation, adversarial_dataset

__all__ = ["AttackBatches", "BatchMaker", "CleanBatches", "DenoiserPairs", "DictDataset", "FrozenFeatures", "ObjectCrops", "StaticAugmentation", "adversarial_dataset"]
