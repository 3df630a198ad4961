"""Metrics over all ranks: each rank has sums over its own samples; the epoch's metric is the
sum over ranks divided by the total count (a per-sample mean over the whole data set, not a
mean of per-rank means, which would weight a short shard like a full one)."""
from __future__ import annotations

import numpy as np

from tinyvision.distributed import comm


def all_reduce_metrics(sums: dict[str, float], count: int) -> tuple[dict[str, float], int]:
    """(per-rank sums of sample-weighted metrics, this rank's sample count) ->
    (the same sums over all ranks, the total count). One all-reduce for all metrics; every
    rank must pass the same keys in any order (they are sorted here)."""
    keys = sorted(sums)
    local = np.array([sums[k] for k in keys] + [count], dtype=np.float64)
    total = comm.all_reduce(local)
    return dict(zip(keys, total[:-1].tolist())), int(round(total[-1]))
