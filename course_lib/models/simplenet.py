"""SimpleNet: the course's baseline detector for 256x256 RGB faces."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..data.faces import MEAN, STD, faces_splits
from ..train.recipes import Recipe, register
from ..train.trainer import output_name


class SimpleNet(nn.Module):
    """Three conv+ReLU+maxpool stages, then an MLP to 2 logits (real, fake).

    Input (B, 3, 256, 256) -> 250 -> pool 125 -> 119 -> pool 59 -> 53 -> pool 26,
    so the flattened features are 24 * 26 * 26 = 16,224 per image.
    Output: (B, 2) logits; column 0 is "real", column 1 is "fake".
    """

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, kernel_size=7)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=7)
        self.conv3 = nn.Conv2d(16, 24, kernel_size=7)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(24 * 26 * 26, 1024)
        self.fc2 = nn.Linear(1024, 256)
        self.fc3 = nn.Linear(256, 2)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.ndim != 4 or image.shape[1:] != (3, 256, 256):
            raise ValueError(
                f"SimpleNet expects a batch of shape (B, 3, 256, 256), got {tuple(image.shape)}; "
                "use the course transforms on 256x256 RGB images")
        x = self.pool(F.relu(self.conv1(image)))
        x = self.pool(F.relu(self.conv2(x)))
        x = self.pool(F.relu(self.conv3(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


# -- zoo recipes: SimpleNet on each face dataset (chapters 2 and 4) ------------------------------
# quick: SimpleNet needs about a hundred steps before it finds the face-swap seams,
# so it trains with small batches; synthetic_dataset gets fewer epochs to keep
# chapter 2 within its time budget. full: the course's settings.
def _register_simplenet(short: str, dataset: str, quick_epochs: int) -> None:
    register(Recipe(
        name=f"simplenet_{short}", summary=f"SimpleNet on {dataset} (the course's detector)",
        build=lambda settings: SimpleNet(), data=faces_splits(dataset),
        quick=dict(epochs=quick_epochs, batch_size=8, optimizer="Adam", lr=3e-4),
        full=dict(epochs=5, batch_size=32, optimizer="Adam", lr=1e-3),
        run_name=lambda settings: output_name(dataset, "SimpleNet", settings["optimizer"]),
        input_normalisation=(MEAN, STD)))


_register_simplenet("fakes", "fakes_dataset", 5)
_register_simplenet("synthetic", "synthetic_dataset", 2)
