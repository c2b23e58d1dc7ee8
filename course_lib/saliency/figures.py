"""Saliency figures shared by chapter 4 and the ``course saliency`` / ``course gradcam`` commands."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle
from torch import nn
from torch.utils.data import DataLoader

from ..data.faces import CLASSES, denormalize
from .gradcam import get_grad_cam_visualization
from .gradient import compute_gradient_saliency_maps


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def sample_indices(dataset, n: int, seed: int = 0) -> list[int]:
    """``n`` distinct indices of ``dataset`` drawn with ``seed`` (all of them if fewer)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(len(dataset), generator=g)[:n].tolist()


def saliency_grid(dataset, model: nn.Module, n: int = 36, seed: int = 0, title: str = ""):
    """``n`` test images, each next to its gradient saliency map for its true label.

    Six pairs per row; each map is scaled to its own maximum. Returns the Figure.
    """
    indices = sample_indices(dataset, n, seed)
    images, labels = zip(*(dataset[i] for i in indices))
    x = torch.stack(images).to(_device(model))
    maps = compute_gradient_saliency_maps(x, torch.tensor(labels), model).cpu().numpy()
    per_row = 6
    rows = int(np.ceil(len(indices) / per_row))
    fig, axes = plt.subplots(rows, 2 * per_row, figsize=(2 * per_row * 1.15, rows * 1.3), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for k, (image, label, saliency) in enumerate(zip(images, labels, maps)):
        ax_img, ax_map = axes[k // per_row, 2 * (k % per_row)], axes[k // per_row, 2 * (k % per_row) + 1]
        ax_img.imshow(denormalize(image))
        ax_img.set_title(CLASSES[label], fontsize=8)
        ax_map.imshow(saliency, cmap="hot")
        ax_map.set_title("saliency", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def mean_saliency_maps(dataset, model: nn.Module, batch_size: int = 32) -> dict[str, np.ndarray]:
    """Mean gradient saliency map of the real and of the fake images: {"real": (H, W), "fake": (H, W)}."""
    sums, counts = {}, {}
    for x, y in DataLoader(dataset, batch_size=batch_size):
        maps = compute_gradient_saliency_maps(x.to(_device(model)), y, model).cpu().numpy()
        for label in (0, 1):
            chosen = maps[(y == label).numpy()]
            if len(chosen):
                sums[label] = sums.get(label, 0) + chosen.sum(axis=0)
                counts[label] = counts.get(label, 0) + len(chosen)
    missing = [CLASSES[label] for label in (0, 1) if label not in counts]
    if missing:
        raise ValueError(f"the dataset has no {' and no '.join(missing)} images; mean maps need both")
    return {CLASSES[label]: sums[label] / counts[label] for label in (0, 1)}


def plot_mean_saliency(means: dict[str, np.ndarray], title: str = ""):
    """The mean maps of ``mean_saliency_maps`` side by side on one colour scale; returns the Figure."""
    vmax = max(float(m.max()) for m in means.values())
    fig, axes = plt.subplots(1, len(means), figsize=(3.4 * len(means) + 0.8, 3.4))
    for ax, (name, mean_map) in zip(axes, means.items()):
        shown = ax.imshow(mean_map, cmap="hot", vmin=0, vmax=vmax)
        ax.set_title(f"mean saliency, {name} images", fontsize=9)
        ax.axis("off")
    fig.colorbar(shown, ax=list(axes), shrink=0.8, label="|d score / d pixel|")
    fig.suptitle(title)
    return fig


def grad_cam_grid(dataset, model: nn.Module, per_class: int = 3, seed: int = 0,
                  target_layer: nn.Module | None = None, title: str = ""):
    """Grad-CAM overlays (true-label target) of ``per_class`` real and ``per_class`` fake images."""
    labels = np.asarray(dataset.labels() if hasattr(dataset, "labels") else [y for _, y in dataset])
    rng = np.random.default_rng(seed)
    chosen = [int(i) for label in (0, 1)
              for i in rng.permutation(np.flatnonzero(labels == label))[:per_class]]
    fig, axes = plt.subplots(1, len(chosen), figsize=(2.1 * len(chosen), 2.4), squeeze=False)
    for ax, index in zip(axes[0], chosen):
        visualization, label = get_grad_cam_visualization(dataset, model, index=index, target_layer=target_layer)
        ax.imshow(visualization)
        ax.set_title(f"{CLASSES[label]} #{index}", fontsize=9)
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_planted_evidence(result: dict, patch, n: int = 6):
    """Images with the planted patch outlined, then one row of maps per saliency method."""
    rows = [("image", result["x"].permute(0, 2, 3, 1).numpy(), None)]
    rows += [(name, maps, "hot") for name, maps in result["maps"].items()]
    fig, axes = plt.subplots(len(rows), n, figsize=(1.7 * n, 1.8 * len(rows)), squeeze=False)
    for r, (name, pictures, cmap) in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(pictures[c], cmap=cmap)
            ax.add_patch(Rectangle((patch.left - 0.5, patch.top - 0.5), patch.size, patch.size,
                                   fill=False, edgecolor="cyan", lw=1.2))
            ax.axis("off")
        axes[r, 0].set_title(name, fontsize=9, loc="left")
    fig.tight_layout()
    return fig
