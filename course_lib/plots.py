"""Figures shared by the notebooks and the ``course plot`` command (matplotlib)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import DetCurveDisplay, RocCurveDisplay


def plot_history(history: dict, title: str = ""):
    """Loss and accuracy per epoch for train, val and test; returns the Figure."""
    epochs = np.arange(1, len(history["train_loss"]) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    for split in ("train", "val", "test"):
        ax_loss.plot(epochs, history[f"{split}_loss"], marker="o", label=split)
        ax_acc.plot(epochs, history[f"{split}_acc"], marker="o", label=split)
    ax_loss.set(xlabel="epoch", ylabel="loss (cross-entropy)", title=f"{title} loss".strip())
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title=f"{title} accuracy".strip())
    for ax in (ax_loss, ax_acc):
        ax.set_xticks(epochs)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def plot_samples_of_faces_dataset(dataset, n: int = 6, title: str = ""):
    """The first ``n`` real and the first ``n`` fake images of a ``FacesDataset``, in two rows.

    ``dataset`` must return PIL images (no transform); returns the Figure.
    The course project's ``plot_samples_of_faces_dataset.py``.
    """
    n = min(n, dataset.real_len, dataset.fake_len)
    if n < 1:
        raise ValueError(f"{dataset.root_path} needs at least one real and one fake image")
    fig, axes = plt.subplots(2, n, figsize=(2 * n, 4.4), squeeze=False)
    for row, (label, offset) in enumerate([("real", 0), ("fake", dataset.real_len)]):
        for col in range(n):
            image, y = dataset[offset + col]
            axes[row, col].imshow(image)
            axes[row, col].set_title(f"{label} (label {y})", fontsize=9)
            axes[row, col].axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_roc_det(scores: dict[str, np.ndarray], labels: np.ndarray, title: str = ""):
    """ROC and DET curves of several named scores, side by side; returns the Figure.

    ``scores`` maps a name to an (N,) array; ``labels`` are 0 real / 1 fake and
    "fake" is the positive class throughout (the course's convention).
    scikit-learn's Display classes draw the curves (DET on the probit scale).
    """
    fig, (ax_roc, ax_det) = plt.subplots(1, 2, figsize=(10, 4))
    for name, values in scores.items():
        RocCurveDisplay.from_predictions(labels, values, pos_label=1, name=name, ax=ax_roc)
        DetCurveDisplay.from_predictions(labels, values, pos_label=1, name=name, ax=ax_det)
    ax_roc.plot([0, 1], [0, 1], "k--", lw=0.8, label="chance")
    ax_roc.set_title(f"{title} ROC (positive = fake)".strip())
    ax_det.set_title(f"{title} DET".strip())
    for ax in (ax_roc, ax_det):
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return fig
