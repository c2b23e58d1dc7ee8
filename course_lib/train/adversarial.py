"""Adversarial training: Defendr's augmentation, Madry's PGD training, and fast FGSM training.

Images are pixels in [0, 1]; eps is in pixel units. ``train_robust`` runs one
of the methods for some epochs and, after every epoch, measures the PGD
accuracy of a held-out batch (Wong et al.'s guard against catastrophic
overfitting: when it collapses, training stops and the best weights return).
"""
from __future__ import annotations

import copy
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from ..attacks import fgsm, pgd
from ..config import show_progress
from ..evaluation import accuracy, pgd_accuracy
from ..io import atomic_torch_save
from . import losses

METHODS = ("clean", "defendr", "pgd", "fast")
LOSSES = ("ce", "alp", "clp", "squeeze")


def fast_fgsm_examples(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
                       alpha: float) -> torch.Tensor:
    """FGSM from a uniform random start (Wong et al., 2020): one step of ``alpha``, projected to eps.

    Written out rather than delegated: cleverhans's attacks refuse a step
    larger than eps, and this method's step (1.25 eps) is exactly that.
    Returns detached examples in [0, 1] within eps of ``x``.
    """
    delta = torch.empty_like(x).uniform_(-eps, eps)
    delta = ((x + delta).clamp(0, 1) - x).requires_grad_(True)
    loss = F.cross_entropy(model(x + delta), y)
    (grad,) = torch.autograd.grad(loss, delta)  # the input only: no weight gradients here
    delta = (delta.detach() + alpha * grad.sign()).clamp(-eps, eps)
    return (x + delta).clamp(0, 1)


def _weights_digest(model: nn.Module) -> str:
    h = hashlib.sha256()
    for key, value in model.state_dict().items():
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def adversarial_dataset(model: nn.Module, dataset: TensorDataset, attack: str, eps: float,
                        cache_dir=None, batch_size: int = 256, **attack_options) -> TensorDataset:
    """Adversarial versions of every example of ``dataset`` (attack "fgsm" or "pgd"), with true labels.

    With ``cache_dir``, the result is stored there under a hash of the model's
    weights, the attack and its options, and the data, and read back next time.
    """
    if attack not in ("fgsm", "pgd"):
        raise ValueError(f"unknown attack {attack!r}; use 'fgsm' or 'pgd'")
    x, y = dataset.tensors
    path = None
    if cache_dir is not None:
        key = json.dumps({"weights": _weights_digest(model), "attack": attack, "eps": eps,
                          "options": attack_options, "n": len(x),
                          "data": hashlib.sha256(x.cpu().numpy().tobytes()).hexdigest()}, sort_keys=True)
        path = Path(cache_dir) / f"adv_{attack}_{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"
        if path.exists():
            saved = torch.load(path)
            return TensorDataset(saved["x"], saved["y"])
    device = next(model.parameters()).device
    parts = []
    for start in range(0, len(x), batch_size):
        xb, yb = x[start:start + batch_size].to(device), y[start:start + batch_size].to(device)
        adv = fgsm(model, xb, yb, eps) if attack == "fgsm" else pgd(model, xb, yb, eps, **attack_options)
        parts.append(adv.cpu())
    adv_x = torch.cat(parts)
    if path is not None:
        atomic_torch_save(path, {"x": adv_x, "y": y.cpu()})
    return TensorDataset(adv_x, y.cpu())


@dataclass
class RobustRun:
    """What ``train_robust`` did: one dict per epoch, and whether it stopped early."""

    method: str
    history: list[dict] = field(default_factory=list)
    stopped_early: bool = False
    best_epoch: int = -1
    seconds: float = 0.0


def _loss(name: str, model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor | None, y: torch.Tensor,
          lam: float) -> torch.Tensor:
    if name == "alp":
        return losses.adversarial_logit_pairing(model(x), model(x_adv), y, lam)
    inputs = x if x_adv is None else x_adv
    if name == "clp":
        return losses.clean_logit_pairing(model(inputs), y, lam)
    if name == "squeeze":
        return losses.logit_squeezing(model(inputs), y, lam)
    return F.cross_entropy(model(inputs), y)


def train_robust(model: nn.Module, train: TensorDataset, method: str, epochs: int, eps: float = 0.3,
                 *, holdout: tuple[torch.Tensor, torch.Tensor] | None = None, loss: str = "ce",
                 lam: float = 0.5, lr: float = 1e-3, batch_size: int = 128, pgd_steps: int = 10,
                 pgd_step: float = 0.05, fast_alpha: float | None = None, defendr_attack: str = "fgsm",
                 collapse_drop: float = 20.0, eps_warmup_epochs: int = 0, cyclic_lr: bool = False,
                 seed: int = 0, cache_dir=None,
                 progress: bool | None = None) -> RobustRun:
    """Train ``model`` in place with ``method``; returns a ``RobustRun``.

    Methods:
        "clean": plain training (the baseline).
        "defendr": Defendr's augmentation: the training set plus its
            ``defendr_attack`` ("fgsm" or "pgd") examples at ``eps``, made once
            with the model as it is at the start (cached in ``cache_dir``).
        "pgd": Madry et al.: every batch replaced by its PGD examples
            (``pgd_steps`` steps of ``pgd_step``, random start).
        "fast": Wong et al.: FGSM from a random start, step ``fast_alpha``
            (default 1.25 eps).
    ``cyclic_lr``: one cycle per run (torch's ``OneCycleLR``, peak ``lr``), as
    Wong et al. train fast FGSM; otherwise ``lr`` is constant.
    ``eps_warmup_epochs``: for the on-the-fly methods, grow the training eps
    linearly over that many epochs (training at eps 0.3 from the first step
    can leave the model stuck at chance).
    ``loss`` "alp" pairs clean and adversarial logits (needs an attack method;
    with "defendr" each clean example is paired with its own stored
    adversarial twin, so an epoch sees the training set once, in pairs);
    "clp" and "squeeze" act on the batch the method trains on.

    After every epoch, with ``holdout`` = (x, y), the 10-step PGD accuracy of
    that batch is recorded; if it falls more than ``collapse_drop`` points
    below its best, training stops and the best epoch's weights are restored.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid methods: {', '.join(METHODS)}")
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; valid losses: {', '.join(LOSSES)}")
    if loss == "alp" and method == "clean":
        raise ValueError("adversarial logit pairing needs the adversarial twin of each example: "
                         "use method 'defendr', 'pgd' or 'fast' with loss 'alp'")
    if epochs < 1 or eps < 0:
        raise ValueError(f"need epochs >= 1 and eps >= 0, got epochs={epochs}, eps={eps}")
    torch.manual_seed(seed)
    device = next(model.parameters()).device
    data = train
    if method == "defendr":
        adv = adversarial_dataset(model, train, defendr_attack, eps, cache_dir=cache_dir,
                                  **({"step": pgd_step, "steps": pgd_steps} if defendr_attack == "pgd" else {}))
        if loss == "alp":  # (clean, adversarial twin, label) triples
            data = TensorDataset(train.tensors[0], adv.tensors[0], train.tensors[1])
        else:
            data = TensorDataset(torch.cat([train.tensors[0], adv.tensors[0]]),
                                 torch.cat([train.tensors[1], adv.tensors[1]]))
    loader = DataLoader(data, batch_size=batch_size, shuffle=True, drop_last=(loss == "clp"),
                        generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = (torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * len(loader))
                if cyclic_lr else None)
    run, best_state, best_guard = RobustRun(method), None, float("-inf")
    start = time.perf_counter()
    for epoch in tqdm(range(epochs), desc=method, disable=not show_progress(progress)):
        train_eps = eps * min(1.0, (epoch + 1) / eps_warmup_epochs) if eps_warmup_epochs > 0 else eps
        alpha = 1.25 * train_eps if fast_alpha is None else fast_alpha * (train_eps / eps if eps else 0.0)
        model.train()
        total, seen = 0.0, 0
        for batch in loader:
            x, y = batch[0].to(device), batch[-1].to(device)
            x_adv = batch[1].to(device) if len(batch) == 3 else None
            if method == "pgd":
                x_adv = pgd(model, x, y, train_eps, min(pgd_step, train_eps), pgd_steps)
            elif method == "fast":
                x_adv = fast_fgsm_examples(model, x, y, train_eps, alpha)
            batch_loss = _loss(loss, model, x, x_adv, y, lam)
            optimizer.zero_grad()
            batch_loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
            total, seen = total + batch_loss.item() * len(y), seen + len(y)
        record = {"epoch": epoch + 1, "train_eps": train_eps, "loss": total / seen,
                  "seconds": time.perf_counter() - start}
        if holdout is not None:
            hx, hy = holdout[0].to(device), holdout[1].to(device)
            record["holdout_clean_acc"] = accuracy(model, hx, hy)
            record["holdout_pgd_acc"] = pgd_accuracy(model, hx, hy, eps, steps=10, step=eps / 4)
            guard = record["holdout_pgd_acc"]
            if guard > best_guard:
                best_guard, best_state, run.best_epoch = guard, copy.deepcopy(model.state_dict()), epoch + 1
            elif guard < best_guard - collapse_drop:
                run.history.append(record)
                run.stopped_early = True
                break
        run.history.append(record)
    if best_state is not None:
        model.load_state_dict(best_state)
    run.seconds = time.perf_counter() - start
    return run
