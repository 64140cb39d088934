"""Data-parallel training: each process's share of a batch, and the DDP wrapper.

Under ``torchrun --nproc_per_node=N`` every process runs :func:`aelib.train.train_epoch` on its
share of each global batch, and ``DistributedDataParallel`` (Li et al. 2020, "PyTorch
Distributed", https://arxiv.org/abs/2006.15704) averages the gradients, so that every process
takes the same step as one process would on the whole batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Shard:
    """This process's place among ``world`` data-parallel processes (rank 0 of 1 without DDP)."""

    rank: int = 0
    world: int = 1

    @classmethod
    def current(cls) -> Shard:
        """This process's shard: from ``torch.distributed`` when a process group is running."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return cls()
        return cls(dist.get_rank(), dist.get_world_size())

    def size(self, global_size: int) -> int:
        """How many of a global batch of ``global_size`` images this process takes."""
        return global_size // self.world + (1 if self.rank < global_size % self.world else 0)

    def take(self, xb: torch.Tensor) -> torch.Tensor:
        """This process's consecutive part of the global batch ``xb`` ``(B, d)``.

        A last batch with fewer images than processes leaves some processes none; they take the
        batch's first image instead, and :meth:`weight` gives its loss the weight 0, so that every
        process joins DDP's gradient average without a special case (and without an empty batch,
        whose mean loss would be 0/0).
        """
        if self.world == 1:
            return xb
        part = torch.tensor_split(xb, self.world)[self.rank]
        return part if len(part) else xb[:1]

    def weight(self, global_size: int) -> float:
        """The factor on this process's mean loss that makes DDP's average the global batch's.

        A process holding ``b`` of ``B`` images scales its mean loss by ``b * world / B``; DDP
        divides the sum of the gradients by ``world``, which leaves the gradient of the mean loss
        over all ``B`` images.
        """
        return self.size(global_size) * self.world / global_size

    def all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        """Sum ``t`` over the processes in place (nothing to do for one process); returns ``t``."""
        if self.world > 1:
            dist.all_reduce(t)
        return t


def wrap(model: nn.Module, shard: Shard, device: torch.device) -> nn.Module:
    """``model`` wrapped in ``DistributedDataParallel`` when several processes train it."""
    if shard.world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def local_device(device: torch.device) -> torch.device:
    """``cuda`` without an index means this process's GPU under ``torchrun`` (``LOCAL_RANK``).

    Args:
        device: a resolved torch device.
    Returns:
        ``cuda:LOCAL_RANK`` for ``cuda`` when torchrun set ``LOCAL_RANK``; else ``device``.
    """
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device
