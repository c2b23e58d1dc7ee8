"""A small fully connected network for MNIST (the geometry chapter compares it with the CNNs)."""
from __future__ import annotations

import torch
from torch import nn

from ..data.mnist import mnist_splits
from ..train.recipes import Recipe, register
from .mnist_cnn import FULL_EVAL, MNIST_MEAN, MNIST_STD, QUICK_EVAL, robust_metrics


class MnistMLP(nn.Module):
    """(B, 1, 28, 28) pixels in [0, 1] -> (B, 10) logits: 784 -> 256 -> 128 -> 10 with ReLUs.

    Normalisation is inside ``forward``, as in ``MnistCNN``.
    """

    def __init__(self, hidden: tuple[int, int] = (256, 128)):
        super().__init__()
        self.fc1 = nn.Linear(28 * 28, hidden[0])
        self.fc2 = nn.Linear(hidden[0], hidden[1])
        self.fc3 = nn.Linear(hidden[1], 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1:] != (1, 28, 28):
            raise ValueError(f"MnistMLP expects (B, 1, 28, 28) images, got {tuple(x.shape)}")
        x = ((x - MNIST_MEAN) / MNIST_STD).flatten(1)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


MLP = dict(epochs=5, batch_size=64, optimizer="Adam", lr=1e-3, **QUICK_EVAL)
register(Recipe(
    name="mnist_mlp", summary="MnistMLP, clean training (for the local-geometry chapter)",
    build=lambda settings: MnistMLP(), data=mnist_splits,
    quick=MLP, full=dict(MLP, epochs=10, **FULL_EVAL), evaluate=robust_metrics))
