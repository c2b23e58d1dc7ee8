"""Training: the one engine, its plug-ins, recipes and the model zoo.

* ``batch.py``: ``Batch``, what a step works on (images, labels and named extras);
* ``engine.py``: ``Engine``, the loop;
* ``objectives/``, ``batches/``, ``metrics/``, ``callbacks/``: the plug-ins, one per file;
* ``trainer.py``: the course's ``Trainer`` over the engine, and its file names;
* ``recipes.py`` and ``zoo.py``: how each shared model is trained, and its cache.
"""
from .batch import Batch
from .engine import Engine, load_history
from .optimizers import OPTIMIZERS, make_optimizer
from .trainer import HISTORY_KEYS, Trainer, output_name

__all__ = ["Batch", "Engine", "HISTORY_KEYS", "OPTIMIZERS", "Trainer", "load_history", "make_optimizer",
           "output_name"]
