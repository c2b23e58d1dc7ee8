"""A wrapper that puts a model's input normalisation inside it, so it takes pixels in [0, 1].

The course's face detectors are trained, as in the course project, on images
already normalised by the dataset's transform (``data.faces.MEAN``/``STD``).
Attacks and saliency need the model to take raw pixels instead (eps is then in
pixel units and clipping to [0, 1] is right), so the zoo hands them out wrapped:
``PixelInput(detector, MEAN, STD)(pixels) == detector(normalised pixels)``.
(torchvision's ``transforms.Normalize`` does the same arithmetic but is a
transform, not a module holding its constants as buffers that follow ``.to``.)
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class PixelInput(nn.Module):
    """``model((x - mean) / std)`` per channel; ``x`` is (B, C, H, W) in [0, 1].

    The wrapped model stays reachable as ``.model`` (Grad-CAM's target layers,
    ``model.model.conv3``); its state dict is the wrapped model's under ``model.``.
    """

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(f"mean has {len(mean)} channels and std {len(std)}; give one value per channel")
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be positive, got {tuple(std)}")
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.mean.shape[1]:
            raise ValueError(f"PixelInput expects (B, {self.mean.shape[1]}, H, W) pixels in [0, 1], "
                             f"got shape {tuple(x.shape)}")
        return self.model((x - self.mean) / self.std)
