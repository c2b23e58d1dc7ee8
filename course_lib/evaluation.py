"""Soft scores, ROC and DET curves for the real/fake detectors (scikit-learn underneath)."""
from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .config import show_progress


def get_soft_scores_and_true_labels(dataset: Dataset, model: nn.Module, batch_size: int = 32,
                                    progress: bool | None = None):
    """Softmax scores of every image in ``dataset``, in dataset order.

    Returns:
        (real_scores, fake_scores, labels): NumPy arrays of shape (N,).
        ``real_scores`` is the softmax probability of class 0 ("real"),
        ``fake_scores`` that of class 1 ("fake"); ``labels`` are 0/1.
    The model runs in eval mode without gradients on its own device, and is
    given back in the mode it was in.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    real, fake, labels = [], [], []
    try:
        with torch.no_grad():
            for inputs, targets in tqdm(DataLoader(dataset, batch_size=batch_size),
                                        desc="scores", leave=False, disable=not show_progress(progress)):
                probs = torch.softmax(model(inputs.to(device)), dim=1).cpu()
                if probs.shape[1] != 2:
                    raise ValueError(f"expected 2 logits (real, fake) per image, got {probs.shape[1]}")
                real.append(probs[:, 0])
                fake.append(probs[:, 1])
                labels.append(torch.as_tensor(targets))
    finally:
        model.train(was_training)
    return (torch.cat(real).numpy(), torch.cat(fake).numpy(), torch.cat(labels).numpy())


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of ``scores``, taking label 1 ("fake") as positive.

    The course keeps "fake" as the positive class for the "real" score too, so
    a good real-score has an AUC near 0, not near 1 (it is 1 minus the fake
    score's AUC when the two scores are the two softmax outputs).
    """
    labels = np.asarray(labels)
    if set(np.unique(labels).tolist()) != {0, 1}:
        raise ValueError("ROC needs both classes (0 real, 1 fake) among the labels")
    return float(roc_auc_score(labels, scores))
