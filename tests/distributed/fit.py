"""One small fit, run by tests/test_distributed.py alone or under torchrun.

Writes, in OUT: ``TAG-weights.pt`` and ``TAG-result.json`` (history and a
measure of the odd-sized validation set) from rank 0, and
``TAG-writes-rankR.json`` from every rank: the files the engine wrote there.
With ``--kill-after-epochs K``, rank 0 kills itself (SIGKILL) as soon as it has saved
the resumable state of epoch K: a run killed mid-training, which torchrun then ends.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from course_lib.train import engine as engine_module
from course_lib.train.distributed import processes
from course_lib.train.engine import Engine


def data(n: int, generator: torch.Generator) -> TensorDataset:
    x = torch.randn(n, 6, generator=generator)
    return TensorDataset(x, (x[:, 0] + x[:, 1] * x[:, 2] > 0).long())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--tag", required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--folder", default="run", help="the run's folder in OUT (a resume reuses one)")
    parser.add_argument("--kill-after-epochs", type=int, default=0, help="rank 0 dies after this epoch's state")
    args = parser.parse_args()
    out = Path(args.out)
    procs = processes()
    writes = []
    for name in ("atomic_write_json", "atomic_torch_save"):  # record what the engine writes, then write it
        def recording(path, *rest, _real=getattr(engine_module, name), **kwargs):
            writes.append(Path(path).name)
            done = _real(path, *rest, **kwargs)
            if args.kill_after_epochs and writes.count("fit.state.pt") == args.kill_after_epochs:
                os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no last write: as a killed job
            return done
        setattr(engine_module, name, recording)
    generator = torch.Generator().manual_seed(1)
    train, val = data(48, generator), data(7, generator)  # 4 global batches of 12; 7 does not split in 2
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    engine = Engine(model, optimizer, batch_size=12, device="cpu", seed=0, progress=False)
    history = engine.fit(train, args.epochs, val=val, output_dir=out / args.folder, run_name="fit")
    measured = engine.measure(val)
    (out / f"{args.tag}-writes-rank{procs.rank}.json").write_text(json.dumps(writes))
    if procs.main:
        torch.save(model.state_dict(), out / f"{args.tag}-weights.pt")
        (out / f"{args.tag}-result.json").write_text(json.dumps({
            "history": history, "measured": measured, "world": procs.world, "steps": engine.step}))


if __name__ == "__main__":
    main()
