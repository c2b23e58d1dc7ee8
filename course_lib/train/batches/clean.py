"""Clean batches: train on the images as they were loaded."""
from __future__ import annotations

from ..batch import Batch
from .base import BatchMaker


class CleanBatches(BatchMaker):
    """The loaded items as they are: ``x``, ``y`` and every named extra (see ``train/batch.py``)."""

    def __call__(self, engine, loaded) -> Batch:
        return Batch.from_loaded(loaded)
