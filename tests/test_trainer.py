"""Trainer: epochs, evaluation, history, checkpoints, atomic writes and resuming."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from course_lib import io as course_io
from course_lib.train import HISTORY_KEYS, Trainer, load_history


def _blobs(n: int, seed: int) -> TensorDataset:
    """Two Gaussian blobs in 8-D: separable, so a linear model learns them."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 8, generator=g) + (2 * y[:, None] - 1) * 1.5
    return TensorDataset(x, y)


def _trainer(seed: int = 0, lr: float = 0.05) -> Trainer:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2))
    return Trainer(model, torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9),
                   nn.CrossEntropyLoss(), 16, _blobs(128, 1), _blobs(64, 2), _blobs(64, 3),
                   device="cpu", seed=seed)


def test_training_loss_falls_and_accuracy_rises():
    history = _trainer().run(4)
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert history["val_acc"][-1] > 90
    assert all(len(history[k]) == 4 for k in HISTORY_KEYS)


@pytest.mark.parametrize("training", [True, False])
def test_evaluation_restores_the_mode_and_computes_no_gradients(training):
    trainer = _trainer()
    trainer.model.train(training)
    loss, acc = trainer.evaluate_model_on_dataloader(trainer.test_dataset)
    assert trainer.model.training is training
    assert all(p.grad is None for p in trainer.model.parameters())
    assert loss > 0 and 0 <= acc <= 100


def test_evaluation_accuracy_is_a_percentage_of_correct_predictions():
    trainer = _trainer()
    x, y = trainer.test_dataset.tensors
    with torch.no_grad():
        trainer.model.eval()
        expected = 100.0 * (trainer.model(x).argmax(1) == y).float().mean().item()
        expected_loss = nn.functional.cross_entropy(trainer.model(x), y).item()
    loss, acc = trainer.evaluate_model_on_dataloader(trainer.test_dataset)
    assert acc == pytest.approx(expected)
    assert loss == pytest.approx(expected_loss, rel=1e-5)


def test_run_writes_history_and_best_checkpoint(tmp_path):
    history = _trainer(lr=0.002).run(3, output_dir=tmp_path, run_name="blobs_MLP_SGD")
    saved = json.loads((tmp_path / "blobs_MLP_SGD.json").read_text())
    assert saved == history and set(saved) == set(HISTORY_KEYS) | {"seconds"}
    assert load_history(tmp_path / "blobs_MLP_SGD.json") == saved
    ckpt = torch.load(tmp_path / "blobs_MLP_SGD.pt")
    assert set(ckpt) == {"model", "val_acc", "test_acc", "epoch"}
    best = max(range(3), key=lambda e: (history["val_acc"][e], -e))  # first epoch with the best val acc
    assert ckpt["epoch"] == best
    assert ckpt["val_acc"] == history["val_acc"][best] and ckpt["test_acc"] == history["test_acc"][best]


def _without_time(history):
    return {k: v for k, v in history.items() if k != "seconds"}


def test_same_seed_same_history():
    assert _without_time(_trainer(seed=5).run(2)) == _without_time(_trainer(seed=5).run(2))


def test_the_best_checkpoint_is_written_only_when_validation_accuracy_improves(tmp_path, monkeypatch):
    trainer = _trainer()
    scripted = iter([(0.5, 60.0), (0.5, 50.0), (0.4, 80.0), (0.4, 70.0), (0.3, 40.0), (0.3, 90.0)])
    monkeypatch.setattr(trainer, "measure", lambda dataset: dict(zip(("loss", "acc"), next(scripted))))  # val, test
    writes = []
    original = course_io.atomic_torch_save

    def recording(path, obj):
        if path.name == "r.pt":
            writes.append(obj["epoch"])
        return original(path, obj)

    import course_lib.train.engine as engine_module
    monkeypatch.setattr(engine_module, "atomic_torch_save", recording)
    trainer.run(3, output_dir=tmp_path, run_name="r")
    assert writes == [0, 1]  # val 60 -> 80 -> 40: the third epoch (test 90%) is not the best


def test_a_killed_run_resumes_where_it_stopped(tmp_path):
    straight = _trainer().run(3, output_dir=tmp_path / "a", run_name="r")
    _trainer().run(1, output_dir=tmp_path / "b", run_name="r")  # "killed" after epoch 1
    resumed_trainer = _trainer()
    resumed = resumed_trainer.run(3, output_dir=tmp_path / "b", run_name="r")
    assert _without_time(resumed) == _without_time(straight)
    final_a = torch.load(tmp_path / "a" / "r.state.pt")["model"]
    for name, tensor in resumed_trainer.model.state_dict().items():
        assert torch.equal(tensor, final_a[name])


def test_resume_refuses_a_state_from_another_run(tmp_path):
    _trainer().run(1, output_dir=tmp_path, run_name="r")
    other = _trainer()
    other.batch_size = 32
    with pytest.raises(ValueError, match="different run.*resume=False"):
        other.run(2, output_dir=tmp_path, run_name="r")
    assert len(other.run(2, output_dir=tmp_path, run_name="r", resume=False)["train_loss"]) == 2


def test_a_crash_during_a_checkpoint_write_keeps_the_old_file(tmp_path, monkeypatch):
    trainer = _trainer()
    trainer.run(1, output_dir=tmp_path, run_name="r")
    before = (tmp_path / "r.pt").read_bytes()

    def broken_save(obj, handle):
        handle.write(b"partial")
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(torch, "save", broken_save)  # course_io imports torch when it saves
    with pytest.raises(KeyboardInterrupt):
        course_io.atomic_torch_save(tmp_path / "r.pt", {"model": {}})
    assert (tmp_path / "r.pt").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.pt", "r.state.pt"]


def test_bad_arguments_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="batch_size"):
        Trainer(nn.Linear(8, 2), None, nn.CrossEntropyLoss(), 0, _blobs(4, 0), _blobs(4, 0), _blobs(4, 0))
    with pytest.raises(ValueError, match="epochs"):
        _trainer().run(0)
    with pytest.raises(FileNotFoundError, match="course train"):
        load_history(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"train_loss": []}')
    with pytest.raises(ValueError, match="missing train_acc"):
        load_history(tmp_path / "bad.json")


def test_make_optimizer_by_course_name():
    from course_lib.train import make_optimizer

    params = list(nn.Linear(2, 2).parameters())
    assert isinstance(make_optimizer("Adam", params, 1e-3), torch.optim.Adam)
    sgd = make_optimizer("SGD", params, 0.1, momentum=0.5)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.5
    with pytest.raises(ValueError, match="valid optimizers: SGD, Adam"):
        make_optimizer("RMSprop", params, 1e-3)
    with pytest.raises(ValueError, match="positive"):
        make_optimizer("Adam", params, 0)
