"""How a test cell passes what the student's code returned to its checks: as plain data.

A test cell of a kit assignment has two parts (see ``cells.py``): a *probe*
that calls the student's functions on fixed inputs and ``record``s the
results, and a *check* that reads them back with ``recorded`` and asserts.
In a student's own notebook both parts run in one kernel and the values stay
in memory. When ``course grade`` grades, the probe runs in the student's
sandbox and the check in a separate process that never runs student code;
the values travel as JSON and ``.npy`` files read with ``allow_pickle=False``,
so nothing a submission returns can run code in the checking process.

Values: None, bool, int, float, str, lists/tuples and str-keyed dicts of
those, NumPy arrays of numbers or booleans, and torch tensors (recorded as
NumPy arrays, detached and on the CPU). ``recorded`` gives back the same
plain types in both modes (tuples come back as lists, tensors as arrays).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

RECORDS_ENV = "COURSE_GRADING_RECORDS"
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_memory: dict[str, tuple[object, list[np.ndarray]]] = {}


def _encode(value, arrays: list[np.ndarray]):
    if value is None or type(value) in (bool, int, float, str):
        return value
    if type(value) in (list, tuple):
        return {"list": [_encode(v, arrays) for v in value]}
    if type(value) is dict:
        bad = [k for k in value if type(k) is not str]
        if bad:
            raise TypeError(f"record() needs dict keys that are str, got {bad[:3]!r}")
        return {"dict": {k: _encode(v, arrays) for k, v in value.items()}}
    if type(value).__module__.startswith("torch") and hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.generic):
        value = np.asarray(value)
    if type(value) is np.ndarray:
        if value.dtype.kind not in "biuf":
            raise TypeError(f"record() takes arrays of numbers or booleans, got dtype {value.dtype}")
        arrays.append(np.array(value, copy=True))
        return {"array": len(arrays) - 1}
    raise TypeError(
        f"record() cannot store a {type(value).__name__}; pass numbers, strings, lists, "
        f"dicts, NumPy arrays or torch tensors (e.g. record(name, float(x)) or tensor.tolist())")


def _decode(obj, arrays: list[np.ndarray]):
    if isinstance(obj, dict):
        if "list" in obj:
            return [_decode(v, arrays) for v in obj["list"]]
        if "dict" in obj:
            return {k: _decode(v, arrays) for k, v in obj["dict"].items()}
        return arrays[obj["array"]]
    return obj


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"record names are 1-100 letters, digits, '_', '-' or '.', got {name!r}")


def record(name: str, value) -> None:
    """Store ``value`` under ``name`` for this notebook's checks (see the module docstring)."""
    _check_name(name)
    arrays: list[np.ndarray] = []
    obj = _encode(value, arrays)
    folder = os.environ.get(RECORDS_ENV)
    if not folder:
        _memory[name] = (obj, [a.copy() for a in arrays])
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, array in enumerate(arrays):
        np.save(folder / f"{name}.{i}.npy", array, allow_pickle=False)
    (folder / f"{name}.json").write_text(json.dumps({"value": obj, "arrays": len(arrays)}))


def recorded(name: str):
    """The value a probe stored under ``name``; KeyError when the probe stored none."""
    _check_name(name)
    folder = os.environ.get(RECORDS_ENV)
    if not folder:
        if name not in _memory:
            raise KeyError(f"nothing recorded under {name!r}: did the probe above run?")
        obj, arrays = _memory[name]
        return _decode(obj, [a.copy() for a in arrays])
    path = Path(folder) / f"{name}.json"
    if not path.is_file():
        raise KeyError(f"nothing recorded under {name!r}: the probe did not finish")
    meta = json.loads(path.read_text())
    arrays = [np.load(Path(folder) / f"{name}.{i}.npy", allow_pickle=False)
              for i in range(int(meta["arrays"]))]
    return _decode(meta["value"], arrays)
