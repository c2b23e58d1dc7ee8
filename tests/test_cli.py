"""The `course` command: help, errors, and the course's train and plot commands."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from course_lib.cli import build_parser, main


def _all_subcommands(parser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield prefix + (name,)
                yield from _all_subcommands(sub, prefix + (name,))


def test_every_subcommand_has_help(capsys):
    commands = list(_all_subcommands(build_parser()))
    assert {("train",), ("plot",), ("saliency",), ("gradcam",), ("data", "faces"), ("notebooks", "run"),
            ("book",)} <= set(commands)
    for command in [()] + commands:
        with pytest.raises(SystemExit) as exit_info:
            main([*command, "--help"])
        assert exit_info.value.code == 0
        assert "usage: course" in capsys.readouterr().out


@pytest.mark.parametrize("flag,value,valid", [
    ("-m", "ResNet", "SimpleNet"),
    ("-d", "faces", "fakes_dataset, synthetic_dataset"),
    ("-o", "RMSprop", "SGD, Adam"),
])
def test_unknown_names_list_the_valid_ones(capsys, flag, value, valid):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", flag, value])
    assert exit_info.value.code == 2
    assert f"{value!r}; valid" in capsys.readouterr().err.replace('"', "'")
    with pytest.raises(SystemExit):
        main(["train", flag, value])
    assert valid in capsys.readouterr().err


def test_unknown_flag_points_to_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--learning-rate", "0.1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --learning-rate" in err and "course train --help" in err


def test_plot_of_a_missing_json_is_a_clear_error(tmp_path, capsys):
    code = main(["plot", "-m", "SimpleNet", "-j", str(tmp_path / "nope.json"), "-d", "fakes_dataset"])
    assert code == 2 and "does not exist" in capsys.readouterr().err


def test_full_profile_without_data_is_a_clear_error(tmp_path, capsys):
    code = main(["train", "--profile", "full", "--data-home", str(tmp_path)])
    assert code == 2 and "Assignment4_datasets" in capsys.readouterr().err


@pytest.mark.slow
def test_course_train_and_plot_as_in_the_course(quick_data_home, tmp_path):
    """The acceptance command: 5 epochs of SimpleNet with Adam on fakes_dataset (quick)."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "course_lib.cli", "train", "-d", "fakes_dataset", "-m", "SimpleNet",
           "-lr", "0.001", "-b", "32", "-e", "5", "-o", "Adam", "--data-home", str(quick_data_home),
           "--out", str(out)]
    subprocess.run(cmd, check=True)
    history = json.loads((out / "fakes_dataset_SimpleNet_Adam.json").read_text())
    assert len(history["train_loss"]) == 5
    assert history["train_loss"][-1] < history["train_loss"][0]
    import torch
    ckpt = torch.load(out / "fakes_dataset_SimpleNet_Adam.pt")
    assert set(ckpt) == {"model", "val_acc", "test_acc", "epoch"}
    figures = tmp_path / "figures"
    assert main(["plot", "-m", "SimpleNet", "-j", str(out / "fakes_dataset_SimpleNet_Adam.json"),
                 "-d", "fakes_dataset", "--out", str(figures)]) == 0
    assert (figures / "fakes_dataset_SimpleNet_curves.png").stat().st_size > 10_000


def test_saliency_of_a_missing_checkpoint_says_how_to_make_one(tmp_path, capsys):
    code = main(["saliency", "-m", "SimpleNet", "-cpp", str(tmp_path / "nope.pt"), "-d", "fakes_dataset"])
    assert code == 2 and "course train" in capsys.readouterr().err


def test_gradcam_of_another_models_checkpoint_is_a_clear_error(tmp_path, capsys):
    import torch

    from course_lib.models import SimpleNet

    path = tmp_path / "simplenet.pt"
    torch.save({"model": SimpleNet().state_dict()}, path)
    code = main(["gradcam", "-m", "XceptionBased", "-cpp", str(path), "-d", "synthetic_dataset"])
    assert code == 2 and "does not hold XceptionBased weights" in capsys.readouterr().err


def test_saliency_and_gradcam_write_their_figures(quick_data_home, tmp_path):
    """The course's saliency_map.py and grad_cam_analysis.py, from a `course train` checkpoint."""
    import torch

    from course_lib.models import SimpleNet

    torch.manual_seed(0)
    path = tmp_path / "fakes_dataset_SimpleNet_Adam.pt"
    torch.save({"model": SimpleNet().state_dict(), "val_acc": 0.0, "test_acc": 0.0, "epoch": 0}, path)
    out = tmp_path / "figures"
    common = ["-m", "SimpleNet", "-cpp", str(path), "-d", "fakes_dataset", "--data-home", str(quick_data_home),
              "--out", str(out), "--device", "cpu"]
    assert main(["saliency", *common]) == 0
    assert main(["gradcam", *common]) == 0
    for name in ("saliency_grid", "mean_saliency", "grad_cam"):
        assert (out / f"fakes_dataset_SimpleNet_{name}.png").stat().st_size > 10_000
