"""Recipes and the model zoo: settings per profile, a cache keyed by everything that made the model."""
from __future__ import annotations

import dataclasses
import json
import os

import pytest
import torch

from course_lib.models import SimpleNet, load_detector
from course_lib.train import Engine, recipes, zoo
from course_lib.train.recipes import RECIPES, code_digest

from .conftest import write_images


@pytest.fixture
def tiny_recipe(monkeypatch):
    """simplenet_fakes on 2+2 images per split, one epoch of batch 2."""
    recipe = RECIPES["simplenet_fakes"] if "simplenet_fakes" in RECIPES else zoo.get_recipe("simplenet_fakes")
    monkeypatch.setitem(RECIPES, "simplenet_fakes",
                        dataclasses.replace(recipe, quick=dict(recipe.quick, epochs=1, batch_size=2)))
    return RECIPES["simplenet_fakes"]


@pytest.fixture
def tiny_faces_home(tmp_path, monkeypatch):
    root = tmp_path / "faces_standin"
    for split in ("train", "val", "test"):
        write_images(root / "fakes_dataset" / split / "real", 2, colour=30)
        write_images(root / "fakes_dataset" / split / "fake", 2, colour=220)
    import course_lib.data.faces as faces

    monkeypatch.setattr(faces, "faces_root", lambda profile, data_home=None, seed=0, progress=None: root)
    return tmp_path


def test_every_zoo_model_has_quick_and_full_settings():
    names = zoo.zoo_names()
    assert {"mnist_baseline", "mnist_pgd", "mnist_fast", "mnist_mlp", "planted_patch", "simplenet_fakes",
            "simplenet_synthetic", "xception_synthetic", "mnist_defendr_fgsm", "mnist_defendr_pgd", "mnist_alp",
            "mnist_clp", "mnist_logit_squeezing", "efficientnet_synthetic_imagenet",
            "efficientnet_synthetic_scratch"} <= set(names)
    assert all(zoo.get_recipe(n).start_from == "mnist_baseline" for n in names if n.startswith(("mnist_defendr",
                                                                                                 "mnist_alp")))
    assert zoo.get_recipe("mnist_defendr_pgd").settings("quick")["eps_levels"] == (0.06, 0.12, 0.3)  # Defendr's
    assert zoo.get_recipe("xception_synthetic").settings("full")["pretrained"] is True
    assert zoo.get_recipe("xception_synthetic").settings("quick")["pretrained"] is False
    with pytest.raises(ValueError, match="no zoo model named 'resnet'.*mnist_pgd"):
        zoo.get_recipe("resnet")
    with pytest.raises(ValueError, match="quick settings lack batch_size, lr, optimizer"):
        recipes.register(dataclasses.replace(zoo.get_recipe("mnist_mlp"), name="bad", quick={"epochs": 1}))


def test_the_zoo_trains_once_then_loads(tiny_recipe, tiny_faces_home, monkeypatch, capsys):
    built = zoo.build("simplenet_fakes", "quick", tiny_faces_home, device="cpu")
    assert built.built_now and "building simplenet_fakes" in capsys.readouterr().out
    assert len(built.history["train_loss"]) == 1 and not built.model.training
    assert (built.folder / "fakes_dataset_SimpleNet_Adam.json").is_file()
    result = json.loads((built.folder / "result.json").read_text())
    assert result["metrics"] == built.metrics and 0 <= built.metrics["test_acc"] <= 100

    def no_training(*args, **kwargs):
        raise AssertionError("a finished build must be loaded, not trained again")

    monkeypatch.setattr(Engine, "fit", no_training)
    again = zoo.build("simplenet_fakes", "quick", tiny_faces_home, device="cpu")
    assert not again.built_now and again.history == built.history
    for a, b in zip(built.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a, b) and a.stride() == b.stride(), "loaded in the layout it was trained in"
    images = torch.rand(2, 3, 256, 256)
    with torch.no_grad():  # so the loaded model computes exactly what the build measured
        assert torch.equal(built.model(images), again.model(images))
    assert zoo.is_built("simplenet_fakes", "quick", tiny_faces_home)


def test_trained_model_takes_pixels_for_every_zoo_name(tiny_recipe, tiny_faces_home):
    from course_lib.data.faces import MEAN, STD

    built = zoo.build("simplenet_fakes", "quick", tiny_faces_home, device="cpu")
    detector = zoo.trained_model("simplenet_fakes", "quick", tiny_faces_home, device="cpu")
    pixels = torch.rand(2, 3, 256, 256)
    normalised = (pixels - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
    with torch.no_grad():
        assert torch.allclose(detector(pixels), built.model(normalised), atol=1e-5)
        assert not torch.allclose(detector(pixels), built.model(pixels), atol=1e-3)
    assert not detector.training and detector.model is not None
    # the MNIST models normalise inside already: the zoo hands them out unwrapped
    assert zoo.get_recipe("mnist_baseline").input_normalisation is None
    assert all(zoo.get_recipe(name).input_normalisation == (MEAN, STD)
               for name in ("simplenet_fakes", "simplenet_synthetic", "xception_synthetic"))


def test_pixel_input_rejects_mismatched_channels():
    from course_lib.models import PixelInput

    with pytest.raises(ValueError, match="expects \\(B, 3, H, W\\)"):
        PixelInput(torch.nn.Identity(), (0.5,) * 3, (0.2,) * 3)(torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="std must be positive"):
        PixelInput(torch.nn.Identity(), (0.5,), (0.0,))


def test_the_build_lock_makes_a_second_builder_wait(tmp_path):
    import threading

    entered = threading.Event()

    def second_builder():
        with zoo._build_lock(tmp_path / "run"):
            entered.set()

    with zoo._build_lock(tmp_path / "run"):
        waiter = threading.Thread(target=second_builder)
        waiter.start()
        assert not entered.wait(0.5), "a second builder entered while the first held the lock"
    waiter.join(5)
    assert entered.is_set()


def test_the_cache_key_changes_with_settings_seed_and_code(tiny_recipe, tiny_faces_home, monkeypatch):
    folder, _ = zoo.run_folder("simplenet_fakes", "quick", tiny_faces_home)
    assert zoo.run_folder("simplenet_fakes", "quick", tiny_faces_home, seed=1)[0] != folder
    monkeypatch.setitem(RECIPES, "simplenet_fakes",
                        dataclasses.replace(tiny_recipe, quick=dict(tiny_recipe.quick, lr=1e-2)))
    assert zoo.run_folder("simplenet_fakes", "quick", tiny_faces_home)[0] != folder
    monkeypatch.setitem(RECIPES, "simplenet_fakes", tiny_recipe)
    assert zoo.run_folder("simplenet_fakes", "quick", tiny_faces_home)[0] == folder
    monkeypatch.setattr(zoo, "code_digest", lambda *objects: ("another version of the code", []))
    assert zoo.run_folder("simplenet_fakes", "quick", tiny_faces_home)[0] != folder


def test_code_digest_follows_the_modules_a_recipe_uses():
    recipe = zoo.get_recipe("mnist_pgd")
    _, names = code_digest(recipe.build, recipe.plan, recipe.evaluate, Engine)
    for module in ("course_lib.models.mnist_cnn", "course_lib.attacks", "course_lib.model_state",
                   "course_lib.train.engine", "course_lib.train.callbacks.overfitting_guard",
                   "course_lib.train.batches.attack", "course_lib.data.mnist", "course_lib.evaluation"):
        assert module in names
    assert "course_lib.models.simplenet" not in names and "course_lib.data.faces" not in names


def test_a_killed_build_resumes(tiny_recipe, tiny_faces_home, monkeypatch):
    monkeypatch.setitem(RECIPES, "simplenet_fakes",
                        dataclasses.replace(tiny_recipe, quick=dict(tiny_recipe.quick, epochs=2)))
    original = Engine.train_epoch
    calls = []

    def killed_in_epoch_two(self, dataset):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return original(self, dataset)

    monkeypatch.setattr(Engine, "train_epoch", killed_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        zoo.build("simplenet_fakes", "quick", tiny_faces_home, device="cpu")
    built = zoo.build("simplenet_fakes", "quick", tiny_faces_home, device="cpu")
    assert len(calls) == 3 and len(built.history["train_loss"]) == 2  # epoch 1 was not trained again


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


def test_course_models_list_and_build(tiny_recipe, tiny_faces_home, quick_data_home, capsys, monkeypatch):
    """On the session's data home, whose scenes the chapters have drawn (a fresh folder spent
    30 s drawing the scenes that the fusion and saliency models' keys name); the faces are the
    tiny ones, so simplenet_fakes gets a key of its own there."""
    from course_lib.cli import main

    home = str(quick_data_home)
    assert main(["models", "list", "--data-home", home]) == 0
    listed = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if not line.startswith(" ")}
    assert "not built" in listed["simplenet_fakes"] and set(zoo.zoo_names()) <= set(listed)
    assert "no data" in listed["simplenet_synthetic"]  # the tiny home has no synthetic_dataset
    assert main(["models", "build", "simplenet_fakes", "--data-home", home, "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "simplenet_fakes: built now; training" in out and "test_acc" in out
    assert main(["models", "build", "simplenet_fakes", "--data-home", home, "--device", "cpu"]) == 0
    assert "simplenet_fakes: already built" in capsys.readouterr().out
    assert main(["models", "list", "--data-home", home]) == 0
    assert "simplenet_fakes      built" in capsys.readouterr().out
    assert main(["models", "build", "resnet", "--data-home", home]) == 2
    assert "no zoo model named 'resnet'" in capsys.readouterr().err
    # Building all: a model whose data is missing is reported, and the others are still built.
    import course_lib.zoo as user_zoo  # the command line's zoo (it re-exports train.zoo's names)

    monkeypatch.setattr(user_zoo, "zoo_names", lambda: ["cifar10_object_net", "simplenet_fakes"])
    assert main(["models", "build", "--data-home", home, "--device", "cpu"]) == 1
    captured = capsys.readouterr()
    assert "cifar10_object_net: not built, its data is missing: CIFAR-10 is missing" in captured.out
    assert "simplenet_fakes: already built" in captured.out and "cifar10_object_net" in captured.err
    assert captured.out.count(": already built") + captured.out.count(": built now") == 1  # only those two
    assert main(["models", "build", "cifar10_object_net", "--data-home", home]) == 2  # named: an error
    assert "cifar-10-python.tar.gz" in capsys.readouterr().err


def _toy_recipes(monkeypatch, base_lr=1e-2):
    """Two tiny zoo entries: toy_base, and toy_tuned that fine-tunes it."""
    from torch import nn
    from torch.utils.data import TensorDataset

    from course_lib.data.splits import Splits

    def data(profile, settings, home, seed):
        g = torch.Generator().manual_seed(0)
        parts = [TensorDataset(torch.randn(16, 4, generator=g), torch.randint(0, 2, (16,), generator=g))
                 for _ in range(3)]
        return Splits(*parts, source="toy", identity={"toy": 1})

    common = dict(build=lambda s: nn.Linear(4, 2), data=data)
    base = recipes.Recipe("toy_base", "toy", quick=dict(epochs=1, batch_size=8, optimizer="SGD", lr=base_lr),
                          full={}, **common)
    tuned = recipes.Recipe("toy_tuned", "toy", quick=dict(epochs=1, batch_size=8, optimizer="SGD", lr=1e-3),
                           full={}, start_from="toy_base", **common)
    monkeypatch.setitem(RECIPES, "toy_base", base)
    monkeypatch.setitem(RECIPES, "toy_tuned", tuned)


def test_a_fine_tuned_zoo_model_starts_from_the_trained_one(monkeypatch, tmp_path):
    _toy_recipes(monkeypatch)
    base = zoo.build("toy_base", "quick", tmp_path, device="cpu")
    seen = []
    original = Engine.fit

    def recording_fit(self, *args, **kwargs):
        seen.append({k: v.clone() for k, v in self.model.state_dict().items()})
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Engine, "fit", recording_fit)
    zoo.build("toy_tuned", "quick", tmp_path, device="cpu")
    assert len(seen) == 1  # the base was loaded, not trained again
    for key, value in base.model.state_dict().items():
        assert torch.equal(seen[0][key], value)
    before = zoo.run_folder("toy_tuned", "quick", tmp_path)[0]
    _toy_recipes(monkeypatch, base_lr=5e-2)  # another base recipe: the fine-tuned model's key changes too
    assert zoo.run_folder("toy_tuned", "quick", tmp_path)[0] != before


def test_an_assembled_zoo_model_takes_its_trained_components_and_trains_nothing(monkeypatch, tmp_path):
    from torch import nn

    _toy_recipes(monkeypatch)
    base_recipe = RECIPES["toy_base"]
    pair = recipes.Recipe("toy_pair", "two copies of toy_base", build=lambda s: nn.ModuleList(
        [nn.Linear(4, 2), nn.Linear(4, 2)]), data=base_recipe.data,
        quick=dict(epochs=0, batch_size=8, optimizer="SGD", lr=0.0), full={},
        components={"0": "toy_base", "1": "toy_base"}, evaluate=lambda model, splits, settings: {"parts": 2})
    monkeypatch.setitem(RECIPES, "toy_pair", pair)
    base = zoo.build("toy_base", "quick", tmp_path, device="cpu")

    def no_training(*args, **kwargs):
        raise AssertionError("an assembled model trains nothing")

    monkeypatch.setattr(Engine, "fit", no_training)
    built = zoo.build("toy_pair", "quick", tmp_path, device="cpu")
    assert built.built_now and built.metrics == {"parts": 2} and built.seconds == 0.0
    for part in built.model:
        for key, value in base.model.state_dict().items():
            assert torch.equal(part.state_dict()[key], value)
    again = zoo.build("toy_pair", "quick", tmp_path, device="cpu")  # loaded from its own checkpoint
    assert not again.built_now and torch.equal(again.model[1].weight, base.model.weight)
    before = zoo.run_folder("toy_pair", "quick", tmp_path)[0]
    _toy_recipes(monkeypatch, base_lr=5e-2)  # a component built another way: the assembly's key changes
    assert zoo.run_folder("toy_pair", "quick", tmp_path)[0] != before


def test_the_defences_are_zoo_models_built_from_the_baseline():
    names = set(zoo.zoo_names())
    assert {"mnist_dunet", "mnist_dunet_pixel", "mnist_dunet_logit", "mnist_dunet_label", "mnist_random_resize_pad",
            "mnist_bit_depth", "mnist_ensemble"} <= names
    assert zoo.get_recipe("mnist_dunet").components == {"classifier": "mnist_baseline"}
    assert zoo.get_recipe("mnist_bit_depth").settings("quick")["epochs"] == 0
    assert set(zoo.get_recipe("mnist_ensemble").components.values()) == {"mnist_dunet", "mnist_alp", "mnist_clp"}
    full = zoo.get_recipe("mnist_dunet").settings("full")
    assert full["encoder_widths"] == (64, 128, 256, 256, 256) and full["decoder_blocks"] == (2, 3, 3, 3)


def test_defendr_table4_denoisers_each_train_on_one_attack_at_one_budget(tmp_path):
    from course_lib.attacks import FGSMAttack, PGDAttack
    from course_lib.models.mnist_defences import denoiser_plan

    expected = {"mnist_dunet_fgsm_012": [FGSMAttack(0.12)], "mnist_dunet_fgsm_030": [FGSMAttack(0.3)],
                "mnist_dunet_pgd_012": [PGDAttack(0.12, 0.04, 5)], "mnist_dunet_pgd_030": [PGDAttack(0.3, 0.1, 5)]}
    for name, attacks in expected.items():
        recipe = zoo.get_recipe(name)
        assert recipe.components == {"classifier": "mnist_baseline"}
        plan = denoiser_plan(recipe.settings("quick"), None, tmp_path)
        assert plan.batches.attacks == attacks, name
        assert plan.objective == zoo.get_recipe("mnist_dunet").plan(recipe.settings("quick"), None, tmp_path).objective
    # the default denoiser trains on Defendr's budgets (its section 5): FGSM and PGD at 0.06, 0.12 and 0.3,
    # taking turns over the digits in quick, every one on every digit in full
    quick = denoiser_plan(zoo.get_recipe("mnist_dunet").settings("quick"), None, tmp_path).batches.attacks
    assert quick == [[FGSMAttack(0.06), FGSMAttack(0.12), FGSMAttack(0.3)],
                     [PGDAttack(0.06, 0.02, 5), PGDAttack(0.12, 0.04, 5), PGDAttack(0.3, 0.1, 5)]]
    full = denoiser_plan(zoo.get_recipe("mnist_dunet").settings("full"), None, tmp_path).batches.attacks
    assert full == [FGSMAttack(0.06), FGSMAttack(0.12), FGSMAttack(0.3),
                    PGDAttack(0.06, 0.01, 40), PGDAttack(0.12, 0.01, 40), PGDAttack(0.3, 0.01, 40)]


def test_default_data_home_holds_inside_the_block_and_is_restored(tmp_path, monkeypatch):
    from course_lib.config import DATA_HOME_ENV, data_home, default_data_home

    monkeypatch.delenv(DATA_HOME_ENV, raising=False)
    with default_data_home(tmp_path / "zoo") as home:
        assert data_home() == home == (tmp_path / "zoo").resolve() and home.is_dir()
    assert DATA_HOME_ENV not in os.environ  # unset before: unset after
    monkeypatch.setenv(DATA_HOME_ENV, str(tmp_path / "mine"))
    with pytest.raises(RuntimeError), default_data_home(tmp_path / "zoo"):
        raise RuntimeError("a build that fails")
    assert os.environ[DATA_HOME_ENV] == str(tmp_path / "mine")  # restored after an error too
