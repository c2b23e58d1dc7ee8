"""The zoo's robust MNIST models meet the issue's targets in the quick profile (built once; notebook 06 reuses them)."""
from __future__ import annotations

import pytest

from course_lib.zoo import build


@pytest.mark.parametrize("name,robust_target", [("mnist_pgd", 80.0), ("mnist_fast", 70.0)])
def test_robust_zoo_models_reach_their_targets(zoo_home, name, robust_target):
    """PGD-50 with 10 restarts at eps 0.3 (the zoo's stored evaluation), and clean accuracy of at least 95%."""
    built = build(name, "quick", zoo_home, device="cpu")
    assert built.metrics["test_acc"] >= 95.0, built.metrics
    assert built.metrics["pgd50x10_eps0.3_acc"] >= robust_target, built.metrics
    assert built.metrics["robust_eval_size"] == 200


def test_the_undefended_baseline_falls_under_attack(mnist_baseline, zoo_home):
    """A working classifier (94% or more clean) that PGD-50 x 10 at eps 0.3 breaks (under 5%).

    The bar is 94%, not the robust models' 95%: three clean epochs on the quick digits
    measured 95.0% and 95.1% in two processes of one machine (its best epoch by
    validation; more epochs keep the same one), one digit from a 95% bar.
    """
    built = build("mnist_baseline", "quick", zoo_home, device="cpu")
    assert built.metrics["test_acc"] >= 94.0 and built.metrics["pgd50x10_eps0.3_acc"] < 5.0, built.metrics
