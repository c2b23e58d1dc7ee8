"""One run on several processes: torchrun's environment, data shards, and which process writes.

Under ``torchrun --nproc_per_node N ...`` every process runs the same
command; ``processes()`` joins them into one process group (NCCL on CUDA,
Gloo on the CPU) from torchrun's environment (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``). Without torchrun it is one
process of one and nothing here communicates.

A recipe's batch size is the *effective* batch: each of N processes trains
on ``batch_size / N`` examples per step and DistributedDataParallel averages
the gradients, so 1 and N processes take the same steps on the same global
batches (``EpochShards``) and share a zoo cache key.
"""
from __future__ import annotations

import atexit
import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import Sampler


@dataclass(frozen=True)
class Processes:
    """This process's place in the run: ``rank`` of ``world``, ``local_rank`` on its machine."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """The process that writes files (rank 0)."""
        return self.rank == 0

    @property
    def several(self) -> bool:
        return self.world > 1


def processes() -> Processes:
    """This process's ``Processes``; joins torchrun's process group on first call under torchrun."""
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) == 1:
        return Processes()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(local_rank)
        # generous: the other processes wait at a barrier while rank 0 evaluates a zoo model alone
        dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(hours=2))
        atexit.register(_leave)
    return Processes(dist.get_rank(), dist.get_world_size(), local_rank)


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every process (nothing to wait for without a process group)."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def sum_over_processes(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Each key's sum over all processes (the values themselves with one process)."""
    if not (dist.is_initialized() and dist.get_world_size() > 1) or not values:
        return values
    keys = sorted(values)
    total = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return dict(zip(keys, total.tolist()))


class EpochShards(Sampler):
    """This process's share of an epoch's shuffled order, so that the global batches are 1 process's.

    The order is ``randperm(n)`` drawn from ``generator`` (the run's, in the
    same state on every process), exactly as ``RandomSampler`` draws it for
    one process, and padded by its first indices to a multiple of ``world``
    (as ``DistributedSampler`` pads; only when ``n`` is not a multiple).
    Process ``rank`` takes every ``world``-th index from ``rank``: with
    ``batch_size / world`` examples per process, global batch k is the
    order's k-th block of ``batch_size``, as on one process.
    ``shuffle=False``: ``range(n)`` sharded the same way, unpadded (each
    example on exactly one process: evaluation).
    """

    def __init__(self, n: int, rank: int, world: int, generator: torch.Generator | None = None,
                 shuffle: bool = True):
        if shuffle and generator is None:
            raise ValueError("a shuffled EpochShards needs the run's generator")
        self.n, self.rank, self.world, self.generator, self.shuffle = n, rank, world, generator, shuffle

    def __iter__(self):
        if not self.shuffle:
            yield from range(self.rank, self.n, self.world)
            return
        order = torch.randperm(self.n, generator=self.generator).tolist()
        if len(order) % self.world:
            order += order[:self.world - len(order) % self.world]
        yield from order[self.rank::self.world]
        # RandomSampler draws one more (empty) permutation at the end of each epoch; so does this, so the
        # generator, and every later epoch's order, stay in step with a one-process run
        torch.randperm(self.n, generator=self.generator)

    def __len__(self) -> int:
        if not self.shuffle:
            return len(range(self.rank, self.n, self.world))
        return -(-self.n // self.world)


def shard_of_each_example(n: int, procs: Processes) -> EpochShards:
    """An evaluation shard: every example on exactly one process (no padding, no repeats)."""
    return EpochShards(n, procs.rank, procs.world, shuffle=False)
