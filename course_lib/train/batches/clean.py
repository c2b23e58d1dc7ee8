"""Clean batches: train on the images as they were loaded."""
from __future__ import annotations

from ..engine import Batch
from .base import BatchMaker


class CleanBatches(BatchMaker):
    """The loaded (x, y) as they are."""

    def __call__(self, engine, loaded: tuple) -> Batch:
        return Batch(x=loaded[0], y=loaded[-1])
