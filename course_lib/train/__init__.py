"""Training: the course's Trainer, the names of its output files, and cached chapter recipes."""
from .optimizers import OPTIMIZERS, make_optimizer
from .recipes import Recipe, detector_recipe, fit_detector
from .trainer import HISTORY_KEYS, Trainer, load_history, output_name

__all__ = ["HISTORY_KEYS", "OPTIMIZERS", "Recipe", "Trainer", "detector_recipe", "fit_detector",
           "load_history", "make_optimizer", "output_name"]
