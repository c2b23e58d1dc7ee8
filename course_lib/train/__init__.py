"""Training: the course's Trainer and the names of its output files."""
from .optimizers import OPTIMIZERS, make_optimizer
from .trainer import HISTORY_KEYS, Trainer, load_history, output_name

__all__ = ["HISTORY_KEYS", "OPTIMIZERS", "make_optimizer", "Trainer", "load_history", "output_name"]
