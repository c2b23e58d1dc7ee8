"""Evaluation: soft scores and ROC/DET for the face detectors (scikit-learn underneath),
accuracy under attack, and the robustness evaluation checklist."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .config import AutoAttackBudget, show_progress


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


def predicted_real_share(dataset: Dataset, model: nn.Module, batch_size: int = 32) -> tuple[float, float]:
    """(% of the images the model calls "real", % of them that are real).

    Print it next to a detector's accuracy: an accuracy equal to the real share
    with 100% predicted real is a detector that always answers "real".
    """
    real, fake, labels = get_soft_scores_and_true_labels(dataset, model, batch_size)
    return 100.0 * float((real >= fake).mean()), 100.0 * float((labels == 0).mean())


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of ``scores``, taking label 1 ("fake") as positive.

    The course keeps "fake" as the positive class for the "real" score too, so
    a good real-score has an AUC near 0, not near 1 (it is 1 minus the fake
    score's AUC when the two scores are the two softmax outputs).
    """
    from sklearn.metrics import roc_auc_score  # here, not at the top: 1 s of every `import course_lib.zoo`

    labels = np.asarray(labels)
    if set(np.unique(labels).tolist()) != {0, 1}:
        raise ValueError("ROC needs both classes (0 real, 1 fake) among the labels")
    return float(roc_auc_score(labels, scores))


def percent(hits: torch.Tensor) -> float:
    """The share of True in a boolean tensor, in %, from the exact count.

    A float32 mean is not exact: 950 of 1,000 comes out as 94.9999988, which
    fails a ``>= 95`` target that the count meets.
    """
    if hits.numel() == 0:
        raise ValueError("cannot take a percentage of no examples")
    return 100.0 * int(hits.sum().item()) / hits.numel()


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> float:
    """Accuracy in % (eval mode, no gradients; the model's mode is restored)."""
    from .attacks import predict

    return percent(predict(model, x, batch_size) == y.to(x.device))


def pgd_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int = 40,
                 step: float = 0.01, restarts: int = 1, batch_size: int = 128,
                 generator: torch.Generator | None = None) -> float:
    """Accuracy in % under L-infinity PGD with a random start (step capped at eps).

    An example counts as robust when it is classified correctly clean and
    after every one of the ``restarts`` random starts. Each restart attacks
    only the examples still standing: one that is already lost needs no more
    attempts, so a model that falls at the first restart costs one run, not
    ``restarts``. ``generator`` draws the random starts (None: torch's global RNG).
    ``batch_size``: examples attacked at once; on a CPU a smaller batch keeps the
    working set in cache (compare ``benchmarks/attacks.py --batch 128`` and ``--batch 500``).
    """
    standing = pgd_standing(model, x, y, eps, steps, step, restarts, batch_size, generator)
    return percent(standing)


def pgd_standing(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int = 40,
                 step: float = 0.01, restarts: int = 1, batch_size: int = 128,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """(B,) bool: which examples ``pgd_accuracy`` counts as robust (to compare subsets image by image)."""
    from .attacks import pgd, predict

    if eps <= 0:
        return predict(model, x, batch_size) == y.to(x.device)
    out = []
    for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
        standing = predict(model, xb) == yb.to(xb.device)
        for _ in range(restarts):
            idx = standing.nonzero().squeeze(1)
            if len(idx) == 0:
                break
            adv = pgd(model, xb[idx], yb[idx], eps, min(step, eps), steps, generator=generator)
            standing[idx] = predict(model, adv) == yb[idx].to(adv.device)
        out.append(standing)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool, device=x.device)


@dataclass
class Check:
    """One item of the robustness checklist: its name, its verdict, and the numbers.

    ``passed`` is True (pass), False (fail) or None (inconclusive: the
    measurement cannot tell, e.g. a gradient-free attack that broke nothing).
    """

    name: str
    passed: bool | None
    detail: str
    numbers: dict = field(default_factory=dict)  # the measurements it judged (accuracies in %), by name

    def __str__(self) -> str:
        verdict = {True: "pass", False: "FAIL", None: "inconclusive"}[self.passed]
        return f"[{verdict}] {self.name}: {self.detail}"


def judge_checklist(measured: dict) -> list[Check]:
    """The checklist's verdicts from its measurements (accuracies in %).

    ``measured`` holds: ``steps``; ``pgd`` (PGD-steps accuracy), ``fgsm``,
    ``pgd_eps1`` (PGD at eps 1), ``pgd_doubled`` (2 x steps), ``pgd_restarts``
    (3 restarts); on the gradient-free subset ``clean_subset``, ``spsa``,
    ``square`` (optional: Square's accuracy), ``pgd_subset`` and ``subset_size``;
    and, optionally, on the AutoAttack subset ``autoattack``, ``pgd_autoattack_subset``
    and ``autoattack_size``. Kept apart from the attacks so each check can be tested
    with chosen numbers, in every direction.

    The gradient-free check takes the stronger of SPSA and Square, and is
    inconclusive when it lowered the subset's accuracy by no more than one image:
    an attack that breaks nothing cannot vouch for PGD. The AutoAttack check fails
    when PGD is more than 2 points above AutoAttack on the same images (one image's
    worth on fewer than 50 images, where that is more).
    """
    steps, robust = measured["steps"], measured["pgd"]

    def pick(*keys):
        return {key: measured[key] for key in keys if measured.get(key) is not None}

    one_image = 100.0 / measured["subset_size"]
    free = {"SPSA": measured["spsa"]}
    if measured.get("square") is not None:
        free["Square"] = measured["square"]
    strongest = min(free, key=free.get)
    broke_something = free[strongest] < measured["clean_subset"] - one_image
    gradient_free = (free[strongest] >= measured["pgd_subset"] - one_image) if broke_something else None
    free_text = " and ".join(f"{name} {value:.1f}%" for name, value in free.items())
    checks = [
        Check("iterative at least as strong as single-step", robust <= measured["fgsm"],
              f"PGD-{steps} {robust:.1f}% vs FGSM {measured['fgsm']:.1f}%", pick("pgd", "fgsm")),
        Check("accuracy falls to near 0 at eps = 1", measured["pgd_eps1"] <= 5.0,
              f"PGD at eps 1: {measured['pgd_eps1']:.1f}%", pick("pgd_eps1")),
        Check("doubling the steps changes little", abs(measured["pgd_doubled"] - robust) < 1.0,
              f"PGD-{steps} {robust:.1f}% vs PGD-{2 * steps} {measured['pgd_doubled']:.1f}%",
              pick("pgd", "pgd_doubled")),
        Check("restarts never raise robust accuracy", measured["pgd_restarts"] <= robust,
              f"1 start {robust:.1f}% vs 3 restarts {measured['pgd_restarts']:.1f}%", pick("pgd", "pgd_restarts")),
        Check("gradient-free attack not stronger than white-box", gradient_free,
              f"{free_text} vs PGD {measured['pgd_subset']:.1f}% on "
              f"{measured['subset_size']} images (clean {measured['clean_subset']:.1f}%)"
              + ("" if broke_something else
                 f"; {' and '.join(free)} broke at most one image, so cannot vouch for PGD"),
              pick("clean_subset", "spsa", "square", "pgd_subset", "subset_size")),
    ]
    if measured.get("autoattack") is not None:
        gap = measured["pgd_autoattack_subset"] - measured["autoattack"]
        # 2 points, or one image's worth on fewer than 50 images (where one image is more than 2 points)
        # (+ 1e-3: accuracies are means of float32 verdicts; 2 of 50 images read 2.0000014 points)
        allowed = max(2.0, 100.0 / measured["autoattack_size"]) + 1e-3
        checks.append(Check(
            "PGD within 2 points of AutoAttack", gap <= allowed,
            f"PGD {measured['pgd_autoattack_subset']:.1f}% vs AutoAttack {measured['autoattack']:.1f}% on "
            f"{measured['autoattack_size']} images"
            + (f" (budget {measured['autoattack_budget']})" if measured.get("autoattack_budget") else "")
            + (f"; PGD's numbers are optimistic by {gap:.1f} points" if gap > allowed else ""),
            pick("autoattack", "pgd_autoattack_subset", "autoattack_size")))
    return checks


def robustness_checklist(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int = 40,
                         step: float = 0.01, spsa_examples: int = 32, spsa_samples: int = 64,
                         spsa_steps: int = 20, spsa_delta: float = 0.01, square_queries: int | None = 1000,
                         autoattack_examples: int = 0, autoattack_known: dict | None = None,
                         seed: int = 0, autoattack_budget=None) -> list[Check]:
    """Sanity checks that go with a robust-accuracy number (Carlini et al., 2019).

    1. the iterative attack (PGD) is at least as strong as the single step (FGSM);
    2. accuracy falls to near 0 (at most 5%) when eps grows to 1, where any image is reachable;
    3. doubling PGD's steps changes robust accuracy by less than one point;
    4. random restarts never raise it (the first restart repeats the single run);
    5. the gradient-free attacks (SPSA, and Square with ``square_queries`` queries
       unless None; on ``spsa_examples`` images) are not stronger than PGD by more
       than one image's worth of accuracy on that subset (inconclusive when neither
       breaks anything there). ``spsa_delta`` is the size of SPSA's finite
       differences: a layer that rounds or draws at random can hide from small ones;
    6. with ``autoattack_examples`` > 0: AutoAttack (standard; with
       ``autoattack_budget``, a ``config.AutoAttackBudget``, when given) on that many
       images is not more than 2 points below PGD on the same images. AutoAttack takes
       minutes on a CPU; ``autoattack_known`` passes a measurement made elsewhere
       (the zoo's stored one) instead: ``{"autoattack": %, "pgd_autoattack_subset": %,
       "autoattack_size": n}``, PGD's number being from the same images.
    A failed check says the robust accuracy is not to be trusted (too few steps,
    gradient masking, ...). Every random start comes from a generator seeded
    with ``seed``. Returns the checks; ``print(*checks, sep="\\n")`` shows them.
    """
    from . import attacks

    device = x.device

    def pgd_at(eps_, steps_, step_, restarts=1, xs=x, ys=y):
        generator = torch.Generator(device=device).manual_seed(seed)
        return pgd_accuracy(model, xs, ys, eps_, steps_, step_, restarts=restarts, generator=generator)

    xs, ys = x[:spsa_examples], y[:spsa_examples]
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)  # cleverhans's SPSA draws from the global RNG
        gradient_free = accuracy(model, attacks.spsa(model, xs, ys, eps, steps=spsa_steps, samples=spsa_samples,
                                                     delta=spsa_delta), ys)
    measured = {"steps": steps, "pgd": pgd_at(eps, steps, step),
                "fgsm": accuracy(model, torch.cat([attacks.fgsm(model, xb, yb, eps)  # a batch at a time, as PGD
                                                   for xb, yb in zip(x.split(128), y.split(128))]), y),
                "pgd_eps1": pgd_at(1.0, steps, 0.1), "pgd_doubled": pgd_at(eps, 2 * steps, step),
                "pgd_restarts": pgd_at(eps, steps, step, restarts=3), "spsa": gradient_free,
                "pgd_subset": pgd_at(eps, steps, step, xs=xs, ys=ys), "subset_size": len(ys),
                "clean_subset": accuracy(model, xs, ys)}
    if square_queries is not None and eps > 0:
        measured["square"] = accuracy(model, attacks.square(model, xs, ys, eps, square_queries, seed=seed), ys)
    if autoattack_known is not None:
        missing = {"autoattack", "pgd_autoattack_subset", "autoattack_size"} - set(autoattack_known)
        if missing:
            raise ValueError(f"autoattack_known lacks {sorted(missing)}")
        measured.update(autoattack_known)
    elif autoattack_examples > 0 and eps > 0:
        xa, ya = x[:autoattack_examples], y[:autoattack_examples]
        measured.update(autoattack=autoattack_accuracy(model, xa, ya, eps, seed=seed, budget=autoattack_budget),
                        autoattack_budget=str(autoattack_budget or AutoAttackBudget()),
                        pgd_autoattack_subset=pgd_at(eps, steps, step, xs=xa, ys=ya), autoattack_size=len(ya))
    return judge_checklist(measured)


def autoattack_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, version: str = "standard",
                        norm: str = "Linf", seed: int = 0, stages: dict | None = None,
                        progress: bool | None = None, budget=None) -> float:
    """Accuracy in % under AutoAttack (``attacks.autoattack``): robust only if every attack fails.

    ``budget``: a ``config.AutoAttackBudget`` (None: Croce and Hein's standard).

    ``stages``, when a dict, receives the accuracy in % after each attack in run
    order ("clean" first), to read which attack broke what.
    """
    from .attacks import autoattack

    counts: dict = {}
    autoattack(model, x, y, eps, norm=norm, version=version, seed=seed, stages=counts, progress=progress,
               budget=budget)
    if stages is not None:
        stages.update({name: 100.0 * count / len(y) for name, count in counts.items()})
    return 100.0 * list(counts.values())[-1] / len(y)  # the run's own verdict (see autoattack_robust)


def autoattack_digits(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
                      version: str = "standard", seed: int = 0, budget=None) -> str:
    """AutoAttack's verdict per image as a string, "1" robust and "0" broken: ``"1101..."``.

    The zoo stores it beside the accuracy so that a chapter can read AutoAttack's
    accuracy on any first ``n`` of the images (``digits[:n]``) and compare it image
    for image with its own attacks, without running AutoAttack again. For a
    randomised model, torch's RNG is seeded with ``seed`` first (its draws use it).
    ``budget``: as ``autoattack_accuracy``'s.
    """
    from .attacks import autoattack_robust

    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
        torch.manual_seed(seed)
        standing = autoattack_robust(model, x, y, eps, version=version, seed=seed, progress=False, budget=budget)
    return "".join("1" if s else "0" for s in standing.tolist())


def accuracy_of_digits(digits: str, n: int | None = None) -> float:
    """Accuracy in % of the first ``n`` (default all) verdicts of ``autoattack_digits``."""
    digits = digits[:n] if n is not None else digits
    if not digits or set(digits) - {"0", "1"}:
        raise ValueError("expected a non-empty string of 0s and 1s (autoattack_digits)")
    return 100.0 * digits.count("1") / len(digits)


def binomial_interval(accuracy_pct: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson (exact binomial) interval in % for an accuracy measured on ``n`` images."""
    from scipy.stats import binomtest

    if n < 1:
        raise ValueError(f"need at least one image, got n={n}")
    correct = round(accuracy_pct * n / 100.0)
    interval = binomtest(correct, n).proportion_ci(confidence_level=level, method="exact")
    return 100.0 * interval.low, 100.0 * interval.high


def with_autoattack(table: dict, pgd_column: str, autoattack: dict, n: int) -> dict:
    """``table`` with AutoAttack's accuracy, its 95% interval, and its gap to ``pgd_column`` added.

    Args:
        table: {model: {column: accuracy in %}} holding ``pgd_column``.
        autoattack: {model: AutoAttack accuracy in %}, measured on ``n`` images.

    The gap column reads "AA - PGD" and ends in " <<" when AutoAttack is lower than
    PGD by more than one image's worth (100 / n points): PGD's number for that
    model overstates its robustness. A model without an AutoAttack number gets "-".
    """
    one_image = 100.0 / n
    out = {}
    for name, row in table.items():
        row = dict(row)
        if name in autoattack:
            aa = autoattack[name]
            low, high = binomial_interval(aa, n)
            gap = aa - row[pgd_column]
            row["AutoAttack"] = aa
            row["AA 95% CI"] = f"{low:.0f}-{high:.0f}"
            images_lower = round(-gap / one_image)  # in whole images: float32 accuracies are not exact
            row["AA - PGD"] = f"{gap:+.1f}" + (" <<" if images_lower > 1 else "")
        out[name] = row
    return out


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
    Each attack runs with torch's RNG seeded with ``seed`` (inside ``fork_rng``,
    so the caller's RNG is untouched) before each model, so random starts match.
    With ``examples`` (a dict), the adversarial images are kept in it as
    ``examples[model name][attack name]``, for other tables to reuse.
    """
    table = {}
    for model_name, model in models.items():
        row = {}
        for attack_name, attack in attacks.items():
            with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
                torch.manual_seed(seed)
                x_adv = x if attack is None else attack(model, x, y)
            row[attack_name] = accuracy(model, x_adv, y)
            if examples is not None:
                examples.setdefault(model_name, {})[attack_name] = x_adv
        table[model_name] = row
    return table


def format_table(table: dict, corner: str = "model") -> str:
    """A {row: {column: value}} table as aligned text, numbers with one decimal.

    A missing or None value prints as "-" (a cell the source left empty); a
    string prints as it is.
    """
    columns = list(dict.fromkeys(c for row in table.values() for c in row))
    width = max(len(corner), *(len(r) for r in table))

    def cell(value) -> str:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return "-"
        return value if isinstance(value, str) else f"{value:.1f}"

    cells = [max(len(c), 6) for c in columns]
    lines = [corner.ljust(width) + "  " + "  ".join(c.rjust(w) for c, w in zip(columns, cells))]
    for name, row in table.items():
        lines.append(name.ljust(width) + "  " + "  ".join(cell(row.get(c)).rjust(w) for c, w in zip(columns, cells)))
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
