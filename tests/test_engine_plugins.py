"""The engine's two extension points: named extras from the dataset to the objective, and plug-in metrics.

Also the layering that keeps them simple: ``Batch`` sits below the engine and
the batch makers, and nothing in ``train/`` imports ``models/``.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset, TensorDataset

from course_lib.train import Batch, Engine
from course_lib.train.batches import AttackBatches, CleanBatches
from course_lib.train.metrics import Accuracy, Metrics
from course_lib.train.objectives import Objective

LIB = Path(__file__).resolve().parents[1] / "course_lib"


class Boxed(Dataset):
    """Items as dicts: an 8-D point, its label, and two extras (a 'weight' and a (2, 4) 'boxes')."""

    def __init__(self, n: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.arange(n) % 2
        self.x = torch.randn(n, 8, generator=g) + (2 * self.y[:, None] - 1) * 1.5
        self.weight = torch.arange(n, dtype=torch.float32)
        self.boxes = torch.arange(n * 8).reshape(n, 2, 4)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i], "weight": self.weight[i], "boxes": self.boxes[i]}


@dataclass(frozen=True)
class RecordingObjective(Objective):
    """Cross-entropy that records every batch's extras (in a list it is given)."""

    seen: list

    def __call__(self, model, batch):
        self.seen.append({k: v.clone() for k, v in batch.extras.items()})
        return F.cross_entropy(model(batch.x), batch.y), {}


def _engine(**kwargs) -> Engine:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    return Engine(model, torch.optim.SGD(model.parameters(), lr=0.05), batch_size=16, device="cpu",
                  channels_last=False, progress=False, **kwargs)


def test_every_extra_of_a_dict_item_reaches_the_objective_batched_and_in_order():
    seen = []
    data = Boxed(40)
    _engine(objective=RecordingObjective(seen), monitor=None).fit(data, 1)
    assert [set(extras) for extras in seen] == [{"weight", "boxes"}] * 3
    weights = torch.cat([extras["weight"] for extras in seen])
    boxes = torch.cat([extras["boxes"] for extras in seen])
    order = weights.long()  # the shuffled order: weight i belongs to item i
    assert sorted(order.tolist()) == list(range(40))
    assert torch.equal(boxes, data.boxes[order])  # each item's boxes travelled with it


def test_attack_batches_keep_the_extras():
    def attack(model, x, y, generator=None):
        return x + 1

    batch = AttackBatches(attack)(_engine(), {"x": torch.zeros(3, 8), "y": torch.zeros(3, dtype=torch.long),
                                             "scene": torch.tensor([4, 5, 6])})
    assert torch.equal(batch.extras["scene"], torch.tensor([4, 5, 6]))
    assert torch.equal(batch.x, torch.ones(3, 8)) and torch.equal(batch.clean, torch.zeros(3, 8))


def test_an_unnamed_middle_item_is_refused_instead_of_dropped():
    with pytest.raises(ValueError, match="Return a dict"):
        CleanBatches()(None, (torch.zeros(2, 8), torch.ones(2, 8), torch.zeros(2, dtype=torch.long)))
    with pytest.raises(ValueError, match="lacks 'y'"):
        Batch.from_loaded({"x": torch.zeros(2, 8)})


class ScriptedMetric(Metrics):
    """A metric ``score`` whose value per evaluation comes from a script (val, test, val, test, ...)."""

    def __init__(self, values, lower_is_better=False):
        self.values = iter(values)
        self.lower_is_better = frozenset({"score"}) if lower_is_better else frozenset()
        self.current = 1.0

    def __call__(self, model, batch):
        return {"score": self.current}


def _scripted_fit(values, lower_is_better, tmp_path, epochs=4):
    metric = ScriptedMetric(values, lower_is_better)
    engine = _engine(metrics=metric, monitor="val_score")
    original = engine.measure

    def measure(dataset):  # one scripted value per evaluation of a whole set
        metric.current = next(metric.values)
        return original(dataset)

    engine.measure = measure
    history = engine.fit(Boxed(32), epochs, Boxed(16, 1), Boxed(16, 2), output_dir=tmp_path, run_name="r")
    return engine, history


@pytest.mark.parametrize("lower, best", [(False, 2), (True, 1)])
def test_a_plugged_in_metric_is_recorded_and_selects_the_best_epoch(tmp_path, lower, best):
    # val: 5, 1, 9, 3 (tests: 0 each). Highest val is epoch 2; lowest is epoch 1.
    engine, history = _scripted_fit([5, 0, 1, 0, 9, 0, 3, 0], lower, tmp_path)
    assert history["val_score"] == [5, 1, 9, 3] and history["test_score"] == [0, 0, 0, 0]
    assert "val_acc" not in history
    assert engine.best_epoch == best
    saved = torch.load(tmp_path / "r.pt")
    assert saved["epoch"] == best and saved["val_score"] == [5, 1, 9, 3][best]


def test_a_resumed_run_keeps_selecting_on_the_plugged_in_metric(tmp_path):
    _scripted_fit([5, 0, 1, 0], True, tmp_path, epochs=2)  # "killed" after 2 epochs: best so far is 1 (epoch 1)
    engine, history = _scripted_fit([4, 0, 3, 0], True, tmp_path, epochs=4)
    assert history["val_score"] == [5, 1, 4, 3]
    assert engine.best_epoch == 1  # the 1 remembered from before the kill beats 4 and 3
    assert torch.load(tmp_path / "r.pt")["epoch"] == 1


def test_default_metrics_are_loss_and_accuracy_and_evaluate_needs_them():
    engine = _engine()
    values = engine.measure(TensorDataset(torch.randn(10, 8), torch.zeros(10, dtype=torch.long)))
    assert set(values) == {"loss", "acc"}
    assert engine.evaluate(Boxed(10)) == pytest.approx(tuple(engine.measure(Boxed(10)).values()))
    other = _engine(metrics=ScriptedMetric([]), monitor=None)
    other.metrics.current = 1.0
    with pytest.raises(ValueError, match="call measure"):
        other.evaluate(Boxed(10))
    with pytest.raises(ValueError, match="monitor 'val_acc' is not among"):
        _engine(metrics=ScriptedMetric([1.0, 2.0])).fit(Boxed(16), 1, Boxed(16))


def test_accuracy_metric_is_argmax_accuracy_in_percent():
    model = nn.Identity()
    batch = Batch(x=torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0], [0.0, 1.0]]), y=torch.tensor([0, 1, 1, 1]))
    values = Accuracy()(model, batch)
    assert values["acc"] == 75.0
    assert values["loss"] == pytest.approx(F.cross_entropy(batch.x, batch.y).item())


def _hits(n: int, correct: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 2) logits and (n,) labels of which exactly ``correct`` are argmax-right."""
    y = torch.zeros(n, dtype=torch.long)
    y[correct:] = 1
    return torch.tensor([[1.0, 0.0]]).repeat(n, 1), y


def test_accuracies_are_exact_percentages_of_the_count_in_every_metric_and_in_the_epoch_mean():
    from course_lib.train.metrics import HeadAccuracies
    from course_lib.train.objectives import batch_accuracy

    logits, y = _hits(1000, 950)  # a float32 mean makes this 94.9999988
    assert batch_accuracy(logits, y) == 95.0
    assert Accuracy()(nn.Identity(), Batch(x=logits, y=y))["acc"] == 95.0

    class TwoHeads(nn.Module):
        def all_logits(self, x):
            return {"joint": x, "fg": x.flip(1)}

    heads = HeadAccuracies()(TwoHeads(), Batch(x=logits, y=y))
    assert (heads["acc_joint"], heads["acc_fg"], heads["acc"]) == (95.0, 5.0, 95.0)
    model = nn.Linear(2, 2)  # the logits as given
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))
        model.bias.zero_()
    engine = Engine(model, torch.optim.SGD(model.parameters(), lr=0.0), batch_size=300, device="cpu",
                    channels_last=False, progress=False)
    order = torch.randperm(1000, generator=torch.Generator().manual_seed(0))  # uneven batches of hits
    assert engine.measure(TensorDataset(logits[order], y[order]))["acc"] == 95.0


def _imports(path: Path) -> set[str]:
    """Absolute names of the course_lib modules that the file imports."""
    package = ".".join(path.relative_to(LIB.parent).with_suffix("").parts)
    if path.name == "__init__.py":
        package = package.rsplit(".", 1)[0] + ".__init__"
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: -node.level]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.update(f"{module}.{alias.name}" for alias in node.names)
            names.add(module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.startswith("course_lib")}


def test_train_never_imports_models_and_batch_sits_below_engine_and_batch_makers():
    train = sorted((LIB / "train").rglob("*.py"))
    upward = {str(p.relative_to(LIB)): sorted(n for n in _imports(p) if n.startswith("course_lib.models"))
              for p in train}
    assert not {k: v for k, v in upward.items() if v}, "train/ must not import course_lib.models"
    below = _imports(LIB / "train" / "batch.py")
    assert not {n for n in below if n.startswith(("course_lib.train.engine", "course_lib.train.batches"))}
    for maker in (LIB / "train" / "batches").glob("*.py"):
        assert not {n for n in _imports(maker) if n.startswith("course_lib.train.engine")}, maker.name
