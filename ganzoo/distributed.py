"""Data-parallel training across processes started by ``torchrun``.

``torchrun --nproc-per-node N -m ganzoo run RECIPE`` starts N processes with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` set; ganzoo joins them in a process group (gloo on the CPU,
nccl on CUDA), wraps the networks in DistributedDataParallel and gives each process its slice
of every global batch. Rank 0 alone writes the run folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as torch_dist

from ganzoo.errors import GanzooError

T = TypeVar("T")


@dataclass(frozen=True)
class Distributed:
    """This process's place among the training processes."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Whether this process writes the run folder (rank 0)."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """Whether there is more than one process."""
        return self.world > 1

    @property
    def shard(self) -> tuple[int, int]:
        """``(rank, world)``, as the data feeders take it."""
        return self.rank, self.world


def from_environment() -> Distributed:
    """The place torchrun gave this process (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``)."""
    return Distributed(
        int(os.environ.get("RANK", "0")),
        int(os.environ.get("WORLD_SIZE", "1")),
        int(os.environ.get("LOCAL_RANK", "0")),
    )


def start(dist: Distributed, device: torch.device) -> bool:
    """Join the process group; return whether this call created it (and must end it)."""
    if not dist.enabled or torch_dist.is_initialized():
        return False
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch_dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return True


def finish() -> None:
    """Wait until every process is done (rank 0 writes last), then leave the process group.

    Leaving while another process still talks to the group can abort the process (gloo).
    """
    torch_dist.barrier()
    torch_dist.destroy_process_group()


def from_main(dist: Distributed, work: Callable[[], T]) -> T:
    """Run ``work`` on rank 0 and hand its result (or its error) to every process."""
    if not dist.enabled:
        return work()
    box: list[Any] = [None]
    if dist.is_main:
        try:
            box[0] = ("ok", work())
        except GanzooError as exc:
            box[0] = ("error", (exc.exit_code, str(exc)))
            torch_dist.broadcast_object_list(box, src=0)
            raise
    torch_dist.broadcast_object_list(box, src=0)
    status, value = box[0]
    if status == "error":
        error = GanzooError(value[1])
        error.exit_code = value[0]
        raise error
    return value


def average_(tensor: torch.Tensor, dist: Distributed) -> torch.Tensor:
    """Average ``tensor`` in place over the processes."""
    if dist.enabled:
        torch_dist.all_reduce(tensor, op=torch_dist.ReduceOp.SUM)
        tensor.div_(dist.world)
    return tensor


def minimum_(tensor: torch.Tensor, dist: Distributed) -> torch.Tensor:
    """Take the minimum of ``tensor`` in place over the processes."""
    if dist.enabled:
        torch_dist.all_reduce(tensor, op=torch_dist.ReduceOp.MIN)
    return tensor


def any_process(flag: bool, dist: Distributed, device: torch.device) -> bool:
    """Whether ``flag`` is true in any process."""
    if not dist.enabled:
        return flag
    value = torch.tensor(int(flag), device=device)
    torch_dist.all_reduce(value, op=torch_dist.ReduceOp.MAX)
    return bool(value.item())
