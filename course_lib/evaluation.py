"""Evaluation: soft scores and ROC/DET for the face detectors (scikit-learn underneath),
accuracy under attack, and the robustness evaluation checklist."""
from __future__ import annotations

from dataclasses import dataclass

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


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> float:
    """Accuracy in % (eval mode, no gradients; the model's mode is restored)."""
    from .attacks import predict

    return 100.0 * (predict(model, x, batch_size) == y.to(x.device)).float().mean().item()


def pgd_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int = 40,
                 step: float = 0.01, restarts: int = 1, batch_size: int = 500) -> float:
    """Accuracy in % under L-infinity PGD with a random start (step capped at eps)."""
    from .attacks import pgd

    correct = 0.0
    for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
        adv = pgd(model, xb, yb, eps, min(step, eps), steps, restarts=restarts) if eps > 0 else xb
        correct += accuracy(model, adv, yb) / 100.0 * len(yb)
    return 100.0 * correct / len(y)


@dataclass
class Check:
    """One item of the robustness checklist: its name, whether it passed, and the numbers."""

    name: str
    passed: bool
    detail: str

    def __str__(self) -> str:
        return f"[{'pass' if self.passed else 'FAIL'}] {self.name}: {self.detail}"


def robustness_checklist(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int = 40,
                         step: float = 0.01, spsa_examples: int = 32, spsa_samples: int = 64,
                         spsa_steps: int = 20, seed: int = 0) -> list[Check]:
    """Sanity checks that go with a robust-accuracy number (Carlini et al., 2019).

    1. the iterative attack (PGD) is at least as strong as the single step (FGSM);
    2. accuracy falls to near 0 (at most 5%) when eps grows to 1, where any image is reachable;
    3. doubling PGD's steps changes robust accuracy by less than one point;
    4. random restarts never raise it (the first restart repeats the single run);
    5. the gradient-free attack (SPSA, on ``spsa_examples`` images) is not stronger than PGD
       by more than one image's worth of accuracy on that subset.
    A failed check says the robust accuracy is not to be trusted (too few steps,
    gradient masking, ...). Returns the checks; ``print(*checks, sep="\\n")`` shows them.
    """
    from .attacks import fgsm, spsa

    def seeded(fn, *args, **kwargs):
        torch.manual_seed(seed)
        return fn(*args, **kwargs)

    robust = seeded(pgd_accuracy, model, x, y, eps, steps, step)
    single = accuracy(model, fgsm(model, x, y, eps), y)
    huge = seeded(pgd_accuracy, model, x, y, 1.0, steps, 0.1)
    doubled = seeded(pgd_accuracy, model, x, y, eps, 2 * steps, step)
    restarted = seeded(pgd_accuracy, model, x, y, eps, steps, step, restarts=3)
    xs, ys = x[:spsa_examples], y[:spsa_examples]
    torch.manual_seed(seed)
    gradient_free = accuracy(model, spsa(model, xs, ys, eps, steps=spsa_steps, samples=spsa_samples), ys)
    white_box = seeded(pgd_accuracy, model, xs, ys, eps, steps, step)
    one_image = 100.0 / len(ys)
    return [
        Check("iterative at least as strong as single-step", robust <= single,
              f"PGD-{steps} {robust:.1f}% vs FGSM {single:.1f}%"),
        Check("accuracy falls to near 0 at eps = 1", huge <= 5.0, f"PGD at eps 1: {huge:.1f}%"),
        Check("doubling the steps changes little", abs(doubled - robust) < 1.0,
              f"PGD-{steps} {robust:.1f}% vs PGD-{2 * steps} {doubled:.1f}%"),
        Check("restarts never raise robust accuracy", restarted <= robust,
              f"1 start {robust:.1f}% vs 3 restarts {restarted:.1f}%"),
        Check("gradient-free attack not stronger than white-box", gradient_free >= white_box - one_image,
              f"SPSA {gradient_free:.1f}% vs PGD {white_box:.1f}% on {len(ys)} images"),
    ]


def mixed_accuracy(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor,
                   fraction: float, seed: int = 0) -> float:
    """Accuracy in % on a test set where a random ``fraction`` of the images is replaced by its adversarial twin.

    Defendr's Table 1 reports fractions 0, 0.5 and 1.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    if x.shape != x_adv.shape:
        raise ValueError(f"x and x_adv must have the same shape, got {tuple(x.shape)} and {tuple(x_adv.shape)}")
    chosen = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:round(fraction * len(x))]
    mixed = x.clone()
    mixed[chosen.to(x.device)] = x_adv[chosen.to(x.device)]
    return accuracy(model, mixed, y)


def attack_table(models: dict, x: torch.Tensor, y: torch.Tensor, attacks: dict, seed: int = 0,
                 examples: dict | None = None) -> dict:
    """Accuracy in % of every model under every attack: {model name: {attack name: accuracy}}.

    ``attacks`` maps a name to ``f(model, x, y) -> x_adv`` (None: the clean images).
    Each attack is seeded with ``seed`` before each model, so random starts match.
    With ``examples`` (a dict), the adversarial images are kept in it as
    ``examples[model name][attack name]``, for other tables to reuse.
    """
    table = {}
    for model_name, model in models.items():
        row = {}
        for attack_name, attack in attacks.items():
            torch.manual_seed(seed)
            x_adv = x if attack is None else attack(model, x, y)
            row[attack_name] = accuracy(model, x_adv, y)
            if examples is not None:
                examples.setdefault(model_name, {})[attack_name] = x_adv
        table[model_name] = row
    return table


def format_table(table: dict, corner: str = "model") -> str:
    """A {row: {column: value}} table as aligned text, values with one decimal."""
    columns = list(next(iter(table.values())))
    width = max(len(corner), *(len(r) for r in table))
    cells = [max(len(c), 6) for c in columns]
    lines = [corner.ljust(width) + "  " + "  ".join(c.rjust(w) for c, w in zip(columns, cells))]
    for name, row in table.items():
        lines.append(name.ljust(width) + "  " + "  ".join(f"{row[c]:.1f}".rjust(w) for c, w in zip(columns, cells)))
    return "\n".join(lines)


def per_class_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, n_classes: int = 10) -> np.ndarray:
    """(n_classes,) accuracy in % of each true class (NaN for a class absent from y)."""
    from .attacks import predict

    correct = (predict(model, x) == y.to(x.device)).cpu().numpy()
    labels = y.cpu().numpy()
    return np.array([100.0 * correct[labels == c].mean() if (labels == c).any() else np.nan
                     for c in range(n_classes)])


def prediction_confusion(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, n_classes: int = 10) -> np.ndarray:
    """(n_classes, n_classes) counts: row = prediction on the clean image, column = on its adversarial twin."""
    from sklearn.metrics import confusion_matrix

    from .attacks import predict

    return confusion_matrix(predict(model, x).cpu().numpy(), predict(model, x_adv).cpu().numpy(),
                            labels=list(range(n_classes)))
