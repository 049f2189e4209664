"""Data parallelism for :func:`kdlab.train.fit` under ``torchrun``: torch.distributed only.

When ``torchrun`` starts several processes (``WORLD_SIZE`` > 1), ``fit`` joins the default
process group (gloo on CPU, nccl on CUDA), wraps the student in
:class:`~torch.nn.parallel.DistributedDataParallel`, shards each global batch of a
:class:`~kdlab.data.TensorLoader` across the processes, averages the logged terms, and lets
rank 0 alone write checkpoints. Frozen teachers are not wrapped: each process holds its own copy
(or its cached outputs) in inference mode.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world_size: int = 1

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def context(device: torch.device) -> tuple[Context, torch.device]:
    """Join the process group that ``torchrun`` describes (if any); the device of this process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1 or not dist.is_available():
        return Context(), device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Context(dist.get_rank(), dist.get_world_size()), device


def wrap(model: nn.Module, ctx: Context, device: torch.device) -> nn.Module:
    """The model to train: wrapped in DistributedDataParallel when several processes train it."""
    if not ctx.active:
        return model
    return nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def mean_over_processes(values: dict[str, Tensor], ctx: Context) -> dict[str, Tensor]:
    """Average each logged sum over the processes (one all-reduce for all of them)."""
    if not ctx.active or not values:
        return values
    names = sorted(values)
    stacked = torch.stack([torch.as_tensor(values[n], dtype=torch.float32) for n in names])
    dist.all_reduce(stacked)
    return {n: v / ctx.world_size for n, v in zip(names, stacked, strict=True)}


def barrier(ctx: Context) -> None:
    if ctx.active:
        dist.barrier()
