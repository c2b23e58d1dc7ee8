"""What one step of the engine works on: a ``Batch``, made from whatever the DataLoader loaded.

Datasets give items in one of two forms, and ``Batch.from_loaded`` reads both:

* a **dict** ``{"x": image, "y": label, **extras}``: the form for any data with
  more than an image and a label (boxes, scene labels, a class selector...).
  PyTorch's default collation turns a list of such dicts into one dict of
  batched tensors, so every extra arrives in ``Batch.extras`` under its own name;
* a **tuple** ``(x, y)`` (``TensorDataset``, torchvision datasets): no extras.
  A longer tuple is refused, since its middle items have no names to travel
  under; return a dict instead.

This module sits below both the engine and the batch makers, which import it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Batch:
    """One training or evaluation batch.

    ``x`` (B, ...) is what the model sees, ``y`` (B,) the labels; ``clean``
    holds the clean images when ``x`` is adversarial (pairing losses need
    both); ``extras`` maps names to (B, ...) tensors that travel from the
    dataset to the objective and the metrics, e.g. ``boxes`` (B, K, 4) or ``scene`` (B,).
    """

    x: torch.Tensor
    y: torch.Tensor
    clean: torch.Tensor | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)

    @classmethod
    def from_loaded(cls, loaded) -> "Batch":
        """The batch of a DataLoader's output: a dict with "x" and "y" (the rest: extras), or (x, y)."""
        if isinstance(loaded, dict):
            missing = [key for key in ("x", "y") if key not in loaded]
            if missing:
                raise ValueError(f"a dataset item given as a dict needs the keys 'x' and 'y'; it lacks "
                                 f"{', '.join(map(repr, missing))} (it has {', '.join(map(repr, loaded))})")
            return cls(x=loaded["x"], y=loaded["y"],
                       extras={key: value for key, value in loaded.items() if key not in ("x", "y")})
        if len(loaded) != 2:
            raise ValueError(f"a dataset item given as a tuple must be (x, y); this one has {len(loaded)} "
                             "parts. Return a dict {'x': ..., 'y': ..., 'name': ...} so that each extra "
                             "reaches the objective under its name")
        return cls(x=loaded[0], y=loaded[1])


def loaded_to(loaded, move):
    """``loaded`` (a dict or a tuple of tensors) with ``move`` applied to every tensor in it."""
    if isinstance(loaded, dict):
        return {key: move(value) if isinstance(value, torch.Tensor) else value for key, value in loaded.items()}
    return tuple(move(value) if isinstance(value, torch.Tensor) else value for value in loaded)
