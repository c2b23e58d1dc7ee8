"""Callbacks: hooks the engine calls during a fit, one small class per file.

To add one, copy ``one_cycle.py``: subclass ``Callback`` and override the hooks you need.
"""
from .base import Callback
from .eps_warmup import EpsWarmup
from .one_cycle import OneCycle
from .overfitting_guard import OverfittingGuard

__all__ = ["Callback", "EpsWarmup", "OneCycle", "OverfittingGuard"]
