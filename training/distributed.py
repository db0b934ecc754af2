"""The processes of a run: torchrun's environment, each rank's device, and the collectives training uses.

Under torchrun every rank calls the same functions; in a single process each collective returns its input,
so the training code reads the same with one process and with many.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, TypeVar

import torch
import torch.distributed as dist

from vot_lorat.device import resolve_device

T = TypeVar("T")


@dataclass(frozen=True)
class Process:
    """This process's place in the run: its rank among ``world`` ranks and its device."""

    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        """Rank 0 writes the files (log, checkpoints, reports) for the whole run."""
        return self.rank == 0


def setup(device: str = "auto", threads: int = 0) -> Process:
    """Read torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK), pick this rank's device and start the
    process group if there are several ranks. ``threads`` > 0 sets the CPU threads."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = resolve_device(device)
    if chosen.type == "cuda":
        chosen = torch.device("cuda", local_rank if chosen.index is None else chosen.index)
        torch.cuda.set_device(chosen)
    elif threads > 0:
        torch.set_num_threads(threads)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo")
    return Process(rank, world, local_rank, chosen)


def _running() -> bool:
    return dist.is_available() and dist.is_initialized()


def barrier() -> None:
    """Wait for every rank (nothing to wait for in a single process)."""
    if _running():
        dist.barrier()


def gather(item: T) -> List[T]:
    """Every rank's ``item`` (any picklable object), in rank order; ``[item]`` in a single process."""
    if not _running():
        return [item]
    parts: List[T] = [None] * dist.get_world_size()  # type: ignore[list-item]
    dist.all_gather_object(parts, item)
    return parts


def mean(value: torch.Tensor) -> torch.Tensor:
    """``value`` averaged over the ranks; ``value`` itself in a single process."""
    if not _running():
        return value
    total = value.clone()
    dist.all_reduce(total)
    return total / dist.get_world_size()
