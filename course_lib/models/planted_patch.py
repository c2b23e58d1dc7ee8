"""The planted-patch detector: a small CNN that the saliency sanity check explains.

Its recipe (``planted_patch``) trains it with the engine on ``data/planted_patch.py``'s images.
"""
from __future__ import annotations

import torch
from torch import nn

from ..data.planted_patch import planted_patch_splits
from ..train.recipes import Recipe, register


class PlantedPatchNet(nn.Module):
    """A small CNN: two 3x3 convolutions, global max pooling, one linear layer.

    (B, 3, S, S) in [0, 1] -> (B, 2) logits. ``conv2`` is the layer Grad-CAM explains.
    """

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc = nn.Linear(32, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        return self.fc(torch.relu(self.conv2(x)).amax(dim=(2, 3)))



PLANTED = dict(epochs=10, batch_size=32, optimizer="AdamW", lr=3e-3, weight_decay=0.1, n_train=1024)
register(Recipe(
    name="planted_patch", summary="PlantedPatchNet on planted-evidence images (saliency sanity check)",
    build=lambda settings: PlantedPatchNet(), data=planted_patch_splits, quick=PLANTED, full=PLANTED))
