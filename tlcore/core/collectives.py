"""The collectives of a torchrun run, for every rank: who writes, each rank's share of a batch, summed gradients.

With one process (no torchrun) each answers as for a single rank, so training code calls them unconditionally.
This module is a leaf: torch only, nothing of the project (tlcore.running.ddp launches torchrun and runs each rank).
"""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["rank_world", "is_writer", "RankBatches", "rank_share", "sync_gradients", "all_agree", "sum_across"]


def rank_world() -> tuple[int, int]:
    """This process's rank and the number of ranks.

    Returns:
        (rank, world); (0, 1) without torchrun.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_writer() -> bool:
    """True in the process that writes files: rank 0 (or the only process)."""
    return rank_world()[0] == 0


def rank_share(batch: list[int], rank: int, world: int) -> list[int]:
    """This rank's part of one global batch: contiguous, sizes differing by at most one.

    Args:
        batch: the global batch's indexes; rank: this rank; world: the number of ranks.

    Returns:
        This rank's indexes (empty when the batch has fewer pictures than ranks).
    """
    n = len(batch)
    start, end = rank * n // world, (rank + 1) * n // world
    return batch[start:end]


class RankBatches(torch.utils.data.Sampler):
    """Batches of indexes for one rank: its share of each global batch of the epoch's order. A rank whose share
    of the last batch is empty gets that batch's first picture, weighted 0 (every rank must take every step)."""

    def __init__(self, order, batch_size: int, rank: int, world: int) -> None:
        self.order, self.batch_size, self.rank, self.world = order, batch_size, rank, world

    def global_batches(self) -> list[list[int]]:
        """The epoch's order cut into global batches (every rank's share together)."""
        order = list(self.order)
        return [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    def __iter__(self):
        for batch in self.global_batches():
            yield rank_share(batch, self.rank, self.world) or batch[:1]

    def __len__(self) -> int:
        return -(-len(self.order) // self.batch_size)

    def weights(self) -> list[float]:
        """Per step, this rank's share of the global batch (0 for a padding batch)."""
        return [len(rank_share(b, self.rank, self.world)) / len(b) for b in self.global_batches()]


def sync_gradients(params: list[torch.nn.Parameter]) -> None:
    """Sum the gradients of these parameters across ranks, in one flattened all-reduce.

    Args:
        params: the trainable parameters (a missing gradient counts as zeros).
    """
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def all_agree(flag: bool) -> bool:
    """Rank 0's answer, for every rank (a cancel must stop all ranks at the same step).

    Args:
        flag: this rank's answer (only rank 0's counts).

    Returns:
        Rank 0's answer.
    """
    if rank_world()[1] == 1:
        return flag
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    value = torch.tensor([1 if flag else 0], device=device)
    dist.broadcast(value, src=0)
    return bool(value.item())


def sum_across(*values: float) -> list[float]:
    """Sums over ranks (epoch metrics: every rank saw part of the pictures).

    Args:
        values: this rank's numbers.

    Returns:
        Each number summed over all ranks.
    """
    if rank_world()[1] == 1:
        return list(values)
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()
