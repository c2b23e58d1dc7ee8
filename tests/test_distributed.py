"""The engine under torchrun (2 processes, Gloo on the CPU, loopback) against one process.

A small MLP, 2 epochs of 4 global batches of 12: the weights after 2
processes must equal one process's, only rank 0 writes, the odd-sized
validation set is counted once, and a run killed (SIGKILL of rank 0) in its
second epoch on 2 processes resumes on 1 to the same weights.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from course_lib.train.distributed import EpochShards, Processes, shard_of_each_example

from .conftest import REPO

FIT = REPO / "tests" / "distributed" / "fit.py"


def _run(out, tag: str, processes: int, epochs: int = 2, run: str | None = None, kill_after: int = 0) -> None:
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
                if processes > 1 else [sys.executable])
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    done = subprocess.run([*launcher, str(FIT), str(out), "--tag", tag, "--epochs", str(epochs),
                           "--folder", run or tag, "--kill-after-epochs", str(kill_after)],
                          env=env, capture_output=True, text=True, timeout=300)
    if kill_after:
        assert done.returncode != 0 and not (out / f"{tag}-result.json").exists(), "the run was not killed"
    else:
        assert done.returncode == 0, done.stderr[-3000:]


def _result(out, tag: str):
    return (torch.load(out / f"{tag}-weights.pt", weights_only=True),
            json.loads((out / f"{tag}-result.json").read_text()))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    _run(out, "one", 1)
    _run(out, "two", 2)
    _run(out, "killed", 2, run="resumed", kill_after=1)  # killed in epoch 2 on 2 processes...
    _run(out, "resumed", 1, epochs=2, run="resumed")  # ...and finished on 1
    return out


def _close(a: dict, b: dict, atol: float = 1e-5) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=atol), (key, (a[key] - b[key]).abs().max())


@pytest.mark.slow
def test_two_processes_train_the_same_weights_as_one(runs):
    one, one_result = _result(runs, "one")
    two, two_result = _result(runs, "two")
    assert (one_result["world"], two_result["world"]) == (1, 2) and one_result["steps"] == two_result["steps"] == 8
    _close(one, two)
    for key in ("train_loss", "val_loss", "val_acc"):
        assert two_result["history"][key] == pytest.approx(one_result["history"][key], abs=1e-5), key


@pytest.mark.slow
def test_evaluation_counts_every_example_once(runs):
    one, two = _result(runs, "one")[1], _result(runs, "two")[1]
    assert two["measured"] == pytest.approx(one["measured"], abs=1e-5)
    correct = two["measured"]["acc"] * 7 / 100  # a whole number of the 7 examples, not of 8 (a repeated one)
    assert correct == pytest.approx(round(correct), abs=1e-6)


@pytest.mark.slow
def test_only_rank_zero_writes(runs):
    rank0 = json.loads((runs / "two-writes-rank0.json").read_text())
    rank1 = json.loads((runs / "two-writes-rank1.json").read_text())
    assert rank1 == [] and {"fit.json", "fit.state.pt", "fit.pt"} <= set(rank0), (rank0, rank1)


@pytest.mark.slow
def test_a_run_killed_on_two_processes_resumes_on_one(runs):
    resumed, result = _result(runs, "resumed")
    two_weights, two = _result(runs, "two")
    _close(two_weights, resumed)
    assert result["history"]["train_loss"][0] == pytest.approx(two["history"]["train_loss"][0], abs=1e-6)
    assert not (runs / "killed-writes-rank0.json").exists(), "the killed run got as far as its own record"
    writes = json.loads((runs / "resumed-writes-rank0.json").read_text())
    assert writes.count("fit.state.pt") == 1 and result["steps"] == 8, "one more epoch after the 4 steps of one"


@pytest.mark.slow
def test_a_zoo_build_under_torchrun_is_the_one_process_build(tmp_path):
    """``torchrun -m course_lib.cli models build mnist_mlp`` on 2 processes against 1 process.

    The same recipe on any number of processes is the same zoo entry (one cache
    folder name), its weights agree and its folder holds the same files (the
    engine's test above shows that rank 0 alone writes them), and the log says the
    build ran on 2 processes (so DDP, not a silent single-process run).
    """
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), COURSE_PROGRESS="0")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    folders, logs = {}, {}
    for world, launcher in ((1, [sys.executable]), (2, torchrun)):
        home = tmp_path / f"home{world}"
        done = subprocess.run([*launcher, "-m", "course_lib.cli", "models", "build", "mnist_mlp",
                               "--data-home", str(home)], env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        [folders[world]] = (home / "models").iterdir()
        logs[world] = done.stdout
    assert folders[1].name == folders[2].name, "the process count changed the recipe's cache key"
    assert "on 2 processes" in logs[2] and "on 2 processes" not in logs[1], logs[2][-2000:]
    weights = {world: torch.load(folder / "mnist_mlp.pt", weights_only=True)["model"]
               for world, folder in folders.items()}
    _close(weights[1], weights[2], atol=1e-4)
    assert sorted(p.name for p in folders[2].iterdir()) == sorted(p.name for p in folders[1].iterdir())


def test_epoch_shards_give_one_process_global_batches_and_each_test_example_once():
    n, batch = 48, 12
    for world in (1, 2, 3, 4):
        shards = [list(EpochShards(n, rank, world, torch.Generator().manual_seed(5))) for rank in range(world)]
        order = torch.randperm(n, generator=torch.Generator().manual_seed(5)).tolist()
        local = batch // world
        for k in range(n // batch):
            together = sorted(i for shard in shards for i in shard[k * local:(k + 1) * local])
            assert together == sorted(order[k * batch:(k + 1) * batch]), (world, k)
    for world in (2, 3):
        seen = [i for rank in range(world) for i in shard_of_each_example(7, Processes(rank, world))]
        assert sorted(seen) == list(range(7))
    with pytest.raises(ValueError, match="generator"):
        EpochShards(7, 0, 2)
