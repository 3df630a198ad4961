"""DistributedSampler: each rank's share of a dataset's indices, as in
``torch.utils.data.DistributedSampler``.

With R ranks and N samples every rank gets S = ceil(N / R) indices, so that all ranks run the
same number of steps (a rank with fewer would stop early and leave the others waiting in the
all-reduce). The list of N indices (a permutation when shuffling, drawn from ``seed + epoch``
so that every rank draws the same one) is padded to R * S by repeating its start, and rank r
takes every R-th index from position r:

    N = 10, R = 4, S = 3:   order 7 2 9 0 5 1 8 3 6 4 | 7 2     (padded with its first 2)
    rank 0: 7 5 6    rank 1: 2 1 4    rank 2: 9 8 7    rank 3: 0 3 2

``drop_last=True`` cuts the list to R * floor(N / R) instead (no sample seen twice, a few not at
all). Call ``set_epoch(e)`` at the start of each epoch, or every epoch repeats one order.
"""
from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np


class DistributedSampler:
    """Indices of ``dataset`` for rank ``rank`` of ``num_replicas`` (defaults: this process's
    rank and world size from ``tinyvision.distributed``)."""

    def __init__(self, dataset: Any, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False) -> None:
        from tinyvision.distributed import comm

        num_replicas = comm.get_world_size() if num_replicas is None else num_replicas
        rank = comm.get_rank() if rank is None else rank
        if num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be >= 1, got {num_replicas}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: invalid rank {rank}, rank should be in [0, {num_replicas - 1}]")
        self.dataset, self.num_replicas, self.rank = dataset, num_replicas, rank
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.epoch = 0
        n = len(dataset)
        if drop_last and n % num_replicas != 0:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)  # = floor(n / R)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose order to draw: the same ``seed + epoch`` on every rank."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)
        if self.shuffle:
            indices = np.random.default_rng(self.seed + self.epoch).permutation(n)
        else:
            indices = np.arange(n)
        if self.drop_last:
            indices = indices[:self.total_size]
        else:  # pad by repeating from the start (several times when N < R)
            indices = np.resize(indices, self.total_size)
        return iter(indices[self.rank:self.total_size:self.num_replicas].tolist())

    def state_dict(self) -> dict:
        return {"epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state.get("epoch", self.epoch))


def shard_loader(loader: Any, seed: int = 0, train: bool = True) -> Any:
    """This rank's share of a ``DataLoader`` (what ``Trainer(distributed=True)`` does to the
    loaders it is given, as Lightning does).

    The loader's ``batch_size`` is read as the *global* batch: each of R ranks takes
    batch_size / R samples a step, so the recipe's batch (and learning rate) stay as they are.
    Training: a ``DistributedSampler`` (padded to equal shards, reshuffled from ``seed + epoch``
    when the loader shuffled). Evaluation: every R-th sample from this rank's position, no
    padding (metrics are all-reduced as sums and counts, so unequal shards are exact).
    """
    from tinyvision.data.loader import DataLoader
    from tinyvision.distributed import comm

    world, rank = comm.get_world_size(), comm.get_rank()
    if world == 1 or not isinstance(loader, DataLoader) or loader.sampler is not None:
        return loader  # nothing to share, or the caller chose the order already
    if train and loader.batch_size % world:
        raise ValueError(f"distributed: the batch size {loader.batch_size} must be divisible by the "
                         f"{world} ranks (each rank takes batch_size / {world} samples a step)")
    if train:
        sampler: Any = DistributedSampler(loader.dataset, world, rank, shuffle=loader.shuffle, seed=seed)
    else:
        sampler = range(rank, len(loader.dataset), world)
    return DataLoader(loader.dataset, batch_size=max(loader.batch_size // world, 1), drop_last=loader.drop_last,
                      collate_fn=loader.collate_fn, sampler=sampler)
