"""SyncBatchNorm: BatchNorm whose batch statistics are those of the whole batch over all ranks.

Plain BatchNorm under data parallelism normalises each rank's B samples with their own mean and
variance: the model then sees R small batches, not one big one, and the result differs from
one process on the big batch (PyTorch's default all the same: it costs no communication).
SyncBatchNorm takes the statistics over all R * B samples, so it equals the big batch.

Forward, per channel, with M = the number of values per channel on all ranks together:

    mean = all_reduce(sum x) / M                      (one all-reduce of (C + 1) numbers)
    var  = all_reduce(sum (x - mean)^2) / M           (a second one: two passes, as stable
                                                       as the one-process computation)
    y    = (x - mean) / sqrt(var + eps) * weight + bias

Backward: the one-process formula (functional.normalization.Standardize) with its two means
taken over all ranks. With g = dL/dy * weight and x_hat = (x - mean) / sqrt(var + eps),

    dL/dx = inv_std * (g - all_reduce(sum g) / M - x_hat * all_reduce(sum g x_hat) / M)

Here L is the *sum* of the ranks' losses: a rank's statistics depend on every rank's inputs, so
rank r's dL/dx gathers what every rank's loss says about x through the mean and variance. The
division by R that turns the sum into the mean happens once, when DistributedDataParallel
averages the parameter gradients. dL/dweight and dL/dbias stay local sums (DDP averages them).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tinyvision.autograd.function import Context, Function
from tinyvision.autograd.tensor import Tensor
from tinyvision.distributed import comm
from tinyvision.kernels.compat import array_module
from tinyvision.nn.module import Module
from tinyvision.nn.normalization import _BatchNorm


def _global_sum(local, axes: tuple[int, ...]):
    """Sum over ``axes`` on this rank, then over all ranks (shape kept for broadcasting)."""
    s = local.sum(axis=axes, keepdims=True)
    return comm.all_reduce(s) if comm.get_world_size() > 1 else s


class SyncBatchNormFunction(Function):
    """y = x_hat * weight + bias with the statistics of x over every rank (module docstring).

    x: (N, C, *) on this rank; weight, bias: (C,) reshaped to broadcast, or None.
    Returns y, and leaves ``ctx.mean`` / ``ctx.var`` (biased, over all ranks) and ``ctx.count``
    for the caller's running statistics.
    """

    @staticmethod
    def forward(ctx: Context, x, weight, bias, axes, eps, stats):
        xp = array_module(x)
        local_count = x.size // x.shape[1]
        count = int(comm.all_reduce(np.array([local_count], dtype=np.int64))[0])
        if count <= 1:
            raise ValueError(f"SyncBatchNorm: expected more than 1 value per channel when training, "
                             f"got {count} over all ranks (input of shape {x.shape} on this rank)")
        mean = _global_sum(x, axes) / count
        d = x - mean
        var = _global_sum(d * d, axes) / count
        inv_std = (1.0 / xp.sqrt(var + eps)).astype(x.dtype, copy=False)
        x_hat = d * inv_std
        y = x_hat if weight is None else x_hat * weight
        if bias is not None:
            y = y + bias
        ctx.save_for_backward(x_hat, inv_std, weight)
        ctx.axes, ctx.count = axes, count
        stats.update(mean=mean, var=var, count=count)  # for the running statistics
        return y

    @staticmethod
    def backward(ctx: Context, grad):
        x_hat, inv_std, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        g = grad if weight is None else grad * weight
        # always all-reduce, even where this rank needs no dL/dx: the other ranks wait for it
        sums = _global_sum(xp_stack(g, g * x_hat), tuple(a + 1 for a in ctx.axes))
        g_mean, gx_mean = sums[0] / ctx.count, sums[1] / ctx.count
        gx = inv_std * (g - g_mean - x_hat * gx_mean) if need_x else None
        gw = grad * x_hat if need_w else None
        gb = grad if need_b else None
        return gx, gw, gb, None, None, None


def xp_stack(a, b):
    """(2, *shape): both per-channel sums travel in one all-reduce."""
    return array_module(a).stack([a, b])


def sync_batch_norm(input: Tensor, running_mean: Any, running_var: Any, weight: Tensor | None = None,
                    bias: Tensor | None = None, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Training-mode batch norm with the statistics of ``input`` over all ranks.

    input: (N, C, *) (this rank's share); running_mean, running_var (updated in place with the
    global mean and unbiased variance, when given), weight, bias: (C,) or None.
    """
    if input.ndim < 2:
        raise ValueError(f"sync_batch_norm: input must be (N, C, *), got shape {input.shape}")
    c = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (c,):
            raise ValueError(f"sync_batch_norm: {name} has shape {tuple(t.shape)} but input of shape "
                             f"{input.shape} needs ({c},) (one value per channel)")
    axes = (0,) + tuple(range(2, input.ndim))
    shape = (c,) + (1,) * (input.ndim - 2)  # broadcasts against (N, C, *)
    stats: dict[str, Any] = {}
    out = SyncBatchNormFunction.apply(input, None if weight is None else weight.reshape(shape),
                                      None if bias is None else bias.reshape(shape), axes, eps, stats)
    m = stats["count"]
    for running, batch in ((running_mean, stats["mean"]), (running_var, stats["var"] * (m / (m - 1)))):
        if running is not None:  # running <- (1 - momentum) running + momentum batch
            running.data[...] = (1.0 - momentum) * running.data + momentum * batch.reshape(c)
    return out


class SyncBatchNorm(_BatchNorm):
    """BatchNorm over (N, C, *) input whose training statistics span all ranks
    (``torch.nn.SyncBatchNorm``). In eval mode, or in a world of one process, it is the
    ordinary BatchNorm. Running statistics: as BatchNorm, from the global mean and the
    global unbiased variance (times M / (M - 1))."""

    _ranks = (2, 3, 4, 5)

    def forward(self, input: Tensor) -> Tensor:
        if input.ndim not in self._ranks:
            raise ValueError(f"SyncBatchNorm: expected at least 2-d input (N, C, *), got shape {input.shape}")
        if input.shape[1] != self.num_features:
            raise ValueError(f"SyncBatchNorm: input has {input.shape[1]} channels (shape {input.shape}), "
                             f"expected num_features = {self.num_features}")
        if not self.training and self.running_mean is not None:
            return super().forward(input)  # eval: the running statistics, nothing to share
        momentum = self.momentum
        if self.track_running_stats:
            self.num_batches_tracked.data += 1
            if momentum is None:  # a cumulative average, as BatchNorm
                momentum = 1.0 / float(self.num_batches_tracked.item())
        return sync_batch_norm(input, self.running_mean, self.running_var, self.weight, self.bias,
                               momentum, self.eps)

    @classmethod
    def convert_sync_batchnorm(cls, module: Module) -> Module:
        """Replace every BatchNorm1d/2d in ``module`` (recursively) by a SyncBatchNorm with the
        same parameters, buffers and settings; returns the module (itself, or the new layer
        when ``module`` is a BatchNorm), as ``torch.nn.SyncBatchNorm.convert_sync_batchnorm``."""
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            sync = cls(module.num_features, module.eps, module.momentum, module.affine,
                       module.track_running_stats, bias=module.bias is not None)
            sync.weight, sync.bias = module.weight, module.bias  # the same Parameters, not copies
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                setattr(sync, name, getattr(module, name))
            sync.train(module.training)
            return sync
        for name, child in list(module.named_children()):
            new = cls.convert_sync_batchnorm(child)
            if new is not child:
                setattr(module, name, new)
        return module
