"""Data-parallel fitting under `torchrun`: one process per rank, gradients averaged by DDP.

`torchrun` (or SLURM through it) sets WORLD_SIZE, RANK, LOCAL_RANK and the rendezvous address;
`distributed_from_env` joins the process group (NCCL when CUDA is available, else gloo) and leaves
it on exit. Outside torchrun it yields the single-process context, so one code path serves both.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from distill.errors import DistillError


@dataclass(frozen=True)
class DistContext:
    """This process's place in the group; `backend` None means a single process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0 writes the student and the logs."""
        return self.rank == 0

    @property
    def device(self) -> torch.device:
        return torch.device(f"cuda:{self.local_rank}" if self.backend == "nccl" else "cpu")

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sums over all ranks (float64), the same on every rank."""
        if self.backend is None:
            return [float(v) for v in values]
        import torch.distributed as dist

        total = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.device)
        dist.all_reduce(total)
        return total.tolist()

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order, on every rank."""
        if self.backend is None:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def wrap(self, module: nn.Module, find_unused_parameters: bool = False) -> nn.Module:
        """`module` itself, or a DistributedDataParallel around it that averages gradients."""
        if self.backend is None:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.local_rank] if self.backend == "nccl" else None
        # buffers (the normaliser) are equal on every rank already: no broadcast before each step
        return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused_parameters,
                                       broadcast_buffers=False)


SINGLE = DistContext()


def _env_int(name: str) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value)
    except ValueError:
        raise DistillError(f"environment variable {name}={value!r} is not an integer; launch with torchrun") from None


@contextmanager
def distributed_from_env() -> Iterator[DistContext]:
    """Joins the torchrun group when WORLD_SIZE > 1, else yields the single-process context."""
    if int(os.environ.get("WORLD_SIZE", "1") or 1) <= 1:
        yield SINGLE
        return
    import torch.distributed as dist

    world, rank, local = _env_int("WORLD_SIZE"), _env_int("RANK"), _env_int("LOCAL_RANK")
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local)
    backend = "nccl" if cuda else "gloo"
    try:
        dist.init_process_group(backend)
    except (ValueError, RuntimeError) as exc:
        raise DistillError(f"rank {rank} of {world} cannot join the {backend} process group "
                           f"({str(exc).splitlines()[0]}); launch with torchrun") from None
    try:
        yield DistContext(rank, world, local, backend)
        # no rank tears its gloo connections down while a peer still uses them (that aborted a rank
        # with "terminate called without an active exception" once in a while)
        dist.barrier()
    finally:
        dist.destroy_process_group()
