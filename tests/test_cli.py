"""The `course` command: help, errors, and the course's train and plot commands."""
from __future__ import annotations

import argparse
import json
import re
import shlex

import pytest

from course_lib.cli import build_parser, main

from .conftest import REPO


def _all_subcommands(parser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield prefix + (name,)
                yield from _all_subcommands(sub, prefix + (name,))


def test_every_subcommand_has_help(capsys):
    commands = list(_all_subcommands(build_parser()))
    assert {("train",), ("plot",), ("samples",), ("roc",), ("saliency",), ("gradcam",), ("data", "faces"),
            ("notebooks", "run"), ("book",)} <= set(commands)
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


def _documented_command_lines(text: str) -> list[str]:
    """The ``course ...`` lines of a page's code blocks, continuation lines joined, comments dropped."""
    lines, blocks = [], re.findall(r"^```(?:bash|sh|console)?\n(.*?)^```", text, flags=re.M | re.S)
    for block in blocks:
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = re.split(r" #| && | \| | ; ", line, maxsplit=1)[0].strip()  # the `course` command alone
            if re.match(r"(\.venv/bin/)?course ", line):
                lines.append(line.split("course ", 1)[1])
    return lines


@pytest.mark.parametrize("page", ["README.md", "book/grading.md"])
def test_the_documented_course_command_lines_parse(page):
    """Every ``course`` line the README and the grading page print has flags the parser knows."""
    lines = _documented_command_lines((REPO / page).read_text())
    assert any(line.startswith("grade ") for line in lines), lines
    parser = build_parser()
    for line in lines:
        argv = [a for a in shlex.split(line) if not re.fullmatch(r"[A-Z_]+=.*", a)]
        try:
            parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"{page}: `course {line}` does not parse")


def _project_command_lines() -> list[str]:
    """The `course ...` command lines of the book's table mapping the project's scripts."""
    page = (REPO / "book" / "course_project.md").read_text()
    table = page.split("## Scripts and commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\|[^|]*\| `(course [^`]+)` \|", table, flags=re.M)


@pytest.mark.slow
def test_the_project_command_lines_work_as_written(quick_data_home, tmp_path, monkeypatch, capsys):
    """Every command of the course-project table, run as the book prints it, from one folder.

    Histories land in out/, checkpoints in checkpoints/ and figures in figures/, so each
    later line finds the files of the earlier ones. The XceptionBased lines need ImageNet
    weights (not available offline): its training must stop with a message saying so,
    and the lines after it are only parsed.
    """
    import torch

    lines = _project_command_lines()
    assert len(lines) == 15 and sum(line.startswith("course train") for line in lines) == 3
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COURSE_DATA_HOME", str(quick_data_home))
    parser = build_parser()
    xception_weights = False
    for line in lines:
        argv = shlex.split(line)[1:]
        parser.parse_args(argv)  # every line's flags are valid, run or not
        if "XceptionBased" in argv and not xception_weights:
            if argv[0] == "train":
                assert main(argv) == 2, line
                assert "FILE does not exist" in capsys.readouterr().err
            continue
        assert main(argv) == 0, line
        out = capsys.readouterr().out
        if argv[0] == "roc":
            sums = re.findall(r"\(sum ([0-9.]+)\)", out)
            assert sums and abs(float(sums[0]) - 1.0) < 1e-3, out
    for dataset in ("fakes_dataset", "synthetic_dataset"):
        history = json.loads((tmp_path / "out" / f"{dataset}_SimpleNet_Adam.json").read_text())
        assert len(history["train_loss"]) == 5
        ckpt = torch.load(tmp_path / "checkpoints" / f"{dataset}_SimpleNet_Adam.pt")
        assert set(ckpt) == {"model", "val_acc", "test_acc", "epoch"}
        assert not (tmp_path / "out" / f"{dataset}_SimpleNet_Adam.pt").exists()
    history = json.loads((tmp_path / "out" / "fakes_dataset_SimpleNet_Adam.json").read_text())
    assert history["train_loss"][-1] < history["train_loss"][0]
    figures = {p.name for p in (tmp_path / "figures").iterdir()}
    assert {"fakes_dataset_samples.png", "fakes_dataset_SimpleNet_curves.png",
            "fakes_dataset_SimpleNet_roc_det.png", "synthetic_dataset_SimpleNet_roc_det.png",
            "fakes_dataset_SimpleNet_saliency_grid.png", "fakes_dataset_SimpleNet_mean_saliency.png",
            "fakes_dataset_SimpleNet_grad_cam.png",
            "synthetic_dataset_SimpleNet_grad_cam.png"} <= figures
    for name in figures:
        assert (tmp_path / "figures" / name).stat().st_size > 10_000, name


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
