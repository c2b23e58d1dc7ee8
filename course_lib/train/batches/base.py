"""The base of every batch maker: the engine calls ``dataset`` once per fit and the maker once per step."""
from __future__ import annotations

from torch.utils.data import Dataset


class BatchMaker:
    """``maker(engine, loaded) -> Batch``, where ``loaded`` is the DataLoader's output on the run's device.

    ``loaded`` is a dict (``x``, ``y`` and named extras) or an ``(x, y)`` tuple;
    ``Batch.from_loaded`` reads either (``train/batch.py``).
    """

    def dataset(self, engine, train: Dataset) -> Dataset:
        """The dataset the epochs iterate over (default: ``train`` itself)."""
        return train

    def eval_dataset(self, engine, dataset: Dataset) -> Dataset:
        """The validation or test set the fit measures after each epoch (default: ``dataset`` itself).

        Called once per fit and set; its items reach the metrics object as loaded
        (no batch maker runs on them), so what it adds must be what the metrics read.
        """
        return dataset

    def __call__(self, engine, loaded: tuple):
        raise NotImplementedError

    def __repr__(self) -> str:
        return type(self).__name__
