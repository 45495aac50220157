"""Training in several processes with torch.distributed, as `torchrun` starts them.

Every process runs the same app with the same config. Each takes its share of every global batch (so N
processes train on exactly the batches one process would), gradients are averaged by DistributedDataParallel,
and process 0 alone logs, shows progress and writes files.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")  # set by torchrun for each process it starts


class LaunchError(Exception):
    """Environment variables that do not describe a torchrun launch."""


@dataclass(frozen=True)
class Processes:
    """This process's place among the processes training together: one process unless started by torchrun."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """The process that logs and writes files."""
        return self.rank == 0

    @property
    def shard(self) -> tuple[int, int]:
        """(this process's index, number of processes): which part of each batch this process takes."""
        return self.rank, self.world

    def start(self, device: torch.device) -> None:
        """Join the process group (NCCL on GPUs, gloo on the CPU); nothing to do for one process."""
        if self.world == 1 or dist.is_initialized():
            return
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method="env://")
        atexit.register(_leave)

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The element-wise sum of `tensor` over all processes (a new tensor)."""
        return self._reduce(tensor, dist.ReduceOp.SUM)

    def max(self, tensor: torch.Tensor) -> torch.Tensor:
        """The element-wise maximum of `tensor` over all processes (a new tensor)."""
        return self._reduce(tensor, dist.ReduceOp.MAX)

    def _reduce(self, tensor: torch.Tensor, op: Any) -> torch.Tensor:
        tensor = tensor.clone()
        if self.world > 1:
            dist.all_reduce(tensor, op=op)
        return tensor

    def gather(self, value: Any) -> list[Any]:
        """`value` from every process, in rank order."""
        if self.world == 1:
            return [value]
        values: list[Any] = [None] * self.world
        dist.all_gather_object(values, value)
        return values

    def wait(self) -> None:
        """Return when every process has got here (so process 0 finishes writing before the others exit)."""
        if self.world > 1:
            dist.barrier()

    def device(self, device: torch.device) -> torch.device:
        """The device this process trains on: with several processes on GPUs, the one numbered LOCAL_RANK."""
        if self.world > 1 and device.type == "cuda":
            if self.local_rank >= torch.cuda.device_count():
                raise LaunchError(
                    f"process {self.rank} is local process {self.local_rank} but this machine has "
                    f"{torch.cuda.device_count()} GPUs; start at most that many per node"
                )
            return torch.device("cuda", self.local_rank)
        return device


def processes(environ: dict[str, str] | None = None) -> Processes:
    """This process's place, from the variables torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK)."""
    env = os.environ if environ is None else environ
    if not any(name in env for name in LAUNCHER_VARIABLES):
        return Processes()
    try:
        rank, world = int(env.get("RANK", "0")), int(env.get("WORLD_SIZE", "1"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError:
        values = ", ".join(f"{n}={env.get(n)!r}" for n in LAUNCHER_VARIABLES)
        raise LaunchError(f"the launcher's variables are not numbers: {values}") from None
    if not 0 <= rank < world or local < 0:
        raise LaunchError(f"RANK={rank} is not a process of WORLD_SIZE={world}")
    return Processes(rank, world, local)


def hydra_overrides(procs: Processes) -> list[str]:
    """Command-line overrides for a process other than process 0: its Hydra run folder is a temporary one,
    deleted at exit, so that only process 0's folder appears under outputs/."""
    if procs.main:
        return []
    folder = tempfile.mkdtemp(prefix=f"cnnforge-rank{procs.rank}-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return [f"hydra.run.dir={folder}", f"hydra.sweep.dir={folder}", "hydra.output_subdir=null"]


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
