"""Data-parallel training over MPI (``mpi4py``): every rank holds the model, takes its share of
each batch, and the gradients are averaged by an all-reduce before each optimizer step.

    mpiexec -n 2 python train.py            # two processes, ranks 0 and 1

    import tinyvision.distributed as dist
    rank, world = dist.init()
    model = dist.DistributedDataParallel(model)           # same weights on all ranks
    loader = DataLoader(data, 16, sampler=dist.DistributedSampler(data))
    ...loss.backward()                                    # .grad = mean over ranks

See docs/distributed.md. Everything but ``init`` works without MPI as a world of one process.
"""
from tinyvision.distributed.comm import (DistributedError, abort, all_gather_object, all_reduce, barrier,
                                         broadcast, get_rank, get_world_size, init, is_initialized,
                                         is_main_process)
from tinyvision.distributed.ddp import DistributedDataParallel, assign_buckets, broadcast_parameters
from tinyvision.distributed.metrics import all_reduce_metrics
from tinyvision.distributed.sampler import DistributedSampler, shard_loader
from tinyvision.distributed.sync_batchnorm import SyncBatchNorm

__all__ = ["DistributedDataParallel", "DistributedError", "DistributedSampler", "SyncBatchNorm", "abort",
           "all_gather_object", "all_reduce", "all_reduce_metrics", "assign_buckets", "barrier", "broadcast",
           "broadcast_parameters", "get_rank", "get_world_size", "init", "is_initialized", "is_main_process",
           "shard_loader"]
