"""Chapter recipes: settings from the profile, a cache keyed by everything that made the model."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from course_lib.config import get_profile
from course_lib.models import SimpleNet, load_detector
from course_lib.train import Trainer, detector_recipe, fit_detector
from course_lib.train.recipes import run_folder

from .conftest import write_images


@pytest.fixture
def tiny_faces_root(tmp_path):
    root = tmp_path / "faces"
    for split in ("train", "val", "test"):
        write_images(root / "fakes_dataset" / split / "real", 2, colour=30)
        write_images(root / "fakes_dataset" / split / "fake", 2, colour=220)
    return root


def test_recipes_follow_the_profile():
    quick = get_profile("quick")
    simple = detector_recipe("quick", "SimpleNet", "fakes_dataset")
    assert (simple.epochs, simple.batch_size, simple.lr) == (
        quick.faces_epochs["fakes_dataset"], quick.faces_batch_size, quick.faces_lr)
    xception = detector_recipe("full", "XceptionBased", "synthetic_dataset")
    assert (xception.epochs, xception.batch_size, xception.lr, xception.pretrained) == (2, 32, 1e-3, True)
    assert detector_recipe("quick", "XceptionBased", "synthetic_dataset").pretrained is False
    with pytest.raises(ValueError, match="no training recipe for model 'ResNet'"):
        detector_recipe("quick", "ResNet", "fakes_dataset")


def test_fit_detector_trains_once_then_loads(tiny_faces_root, tmp_path, monkeypatch, capsys):
    recipe = replace(detector_recipe("quick", "SimpleNet", "fakes_dataset"), epochs=1, batch_size=2)
    model, history, splits, folder = fit_detector(recipe, tiny_faces_root, home=tmp_path, device="cpu")
    assert "training into" in capsys.readouterr().out
    assert len(history["train_loss"]) == 1 and not model.training
    assert folder == run_folder(recipe, tiny_faces_root, 0, tmp_path)

    def no_training(self):
        raise AssertionError("a finished run must be loaded, not trained again")

    monkeypatch.setattr(Trainer, "train_one_epoch", no_training)
    again, history_again, _, _ = fit_detector(recipe, tiny_faces_root, home=tmp_path, device="cpu")
    assert "loading the finished run" in capsys.readouterr().out
    assert history_again == history
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    assert run_folder(replace(recipe, lr=1e-2), tiny_faces_root, 0, tmp_path) != folder
    assert run_folder(recipe, tiny_faces_root, 1, tmp_path) != folder


def test_load_detector_round_trip_and_errors(tmp_path):
    torch.manual_seed(0)
    model = SimpleNet()
    path = tmp_path / "run.pt"
    torch.save({"model": model.state_dict(), "val_acc": 50.0, "test_acc": 50.0, "epoch": 0}, path)
    loaded = load_detector("SimpleNet", path)
    assert not loaded.training
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(FileNotFoundError, match="course train"):
        load_detector("SimpleNet", tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="not a PyTorch checkpoint"):
        load_detector("SimpleNet", tmp_path / "junk.pt")
