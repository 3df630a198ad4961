"""Normalisation layers: BatchNorm1d/2d, InstanceNorm1d/2d/3d, LayerNorm, GroupNorm, LocalResponseNorm.

The maths (and the gradients) live in ``tinyvision.functional.normalization``; these Modules
own the parameters and, for BatchNorm, the running statistics.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from tinyvision import functional as F
from tinyvision.autograd.tensor import Tensor, get_default_dtype
from tinyvision.kernels import compat
from tinyvision.nn import init
from tinyvision.nn.module import Module, empty_parameter


def _buffer(shape: tuple[int, ...], fill: float, dtype: Any, device: str | None) -> Tensor:
    return Tensor(compat.to_device(np.full(shape, fill, dtype=dtype), device or "cpu"))


def _reset_affine(weight: Tensor | None, bias: Tensor | None) -> None:
    """Start every norm as the identity map: weight 1, bias 0."""
    if weight is not None:
        init.ones_(weight)
    if bias is not None:
        init.zeros_(bias)


class _BatchNorm(Module):
    """Shared body of BatchNorm1d/2d; subclasses only say which input ranks they accept.

    Training: normalise with the batch mean and biased variance, and update

        running_mean <- (1 - m) running_mean + m * batch_mean
        running_var  <- (1 - m) running_var  + m * batch_var * M / (M - 1)   (unbiased)

    with m = ``momentum`` (or 1 / num_batches_tracked, a cumulative average, when momentum is
    None). Eval: normalise with the running statistics. ``track_running_stats=False`` keeps
    no buffers and always uses batch statistics.
    """

    _ranks: tuple[int, ...] = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True,
                 device: str | None = None, dtype: Any = None, *, bias: bool = True) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = empty_parameter((num_features,), dtype, device) if affine else None
        self.bias = empty_parameter((num_features,), dtype, device) if affine and bias else None
        if track_running_stats:
            float_dtype = np.dtype(dtype or get_default_dtype())
            self.register_buffer("running_mean", _buffer((num_features,), 0.0, float_dtype, device))
            self.register_buffer("running_var", _buffer((num_features,), 1.0, float_dtype, device))
            self.register_buffer("num_batches_tracked", _buffer((), 0, np.int64, device))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            init.zeros_(self.running_mean)
            init.ones_(self.running_var)
            init.zeros_(self.num_batches_tracked)

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        _reset_affine(self.weight, self.bias)

    def _fill_missing_state(self, state_dict: Mapping[str, Any], prefix: str) -> dict[str, Any]:
        """Checkpoints saved before PyTorch 0.4.1 have no ``num_batches_tracked``: count 0."""
        key = prefix + "num_batches_tracked"
        if self.track_running_stats and key not in state_dict and prefix + "running_mean" in state_dict:
            return {key: np.zeros((), dtype=np.int64)}
        return {}

    def forward(self, input: Tensor) -> Tensor:
        if input.ndim not in self._ranks:
            raise ValueError(f"{type(self).__name__}: expected {' or '.join(map(str, self._ranks))}-d "
                             f"input, got shape {input.shape}")
        momentum = self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data += 1
            if momentum is None:
                momentum = 1.0 / float(self.num_batches_tracked.item())
        # with track_running_stats=False there are no buffers and batch stats are always used
        use_batch_stats = self.training or self.running_mean is None
        return F.batch_norm(input, self.running_mean, self.running_var, self.weight, self.bias,
                            use_batch_stats, 0.0 if momentum is None else momentum, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """BatchNorm over (N, C) or (N, C, L) input, per channel C."""

    _ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """BatchNorm over (N, C, H, W) input, per channel C."""

    _ranks = (4,)


class _InstanceNorm(_BatchNorm):
    """Shared body of InstanceNorm1d/2d/3d: each channel of each sample is normalised over its
    own spatial dims (``F.instance_norm``). torch's defaults differ from BatchNorm's:
    ``affine=False`` and ``track_running_stats=False``. With running stats tracked, training
    updates them (the instance statistics averaged over the batch) and eval uses them;
    ``num_batches_tracked`` is kept (torch's key) but, as in torch, not counted up."""

    _spatial = 2

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = False, track_running_stats: bool = False,
                 device: str | None = None, dtype: Any = None, *, bias: bool = True) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias)

    def forward(self, input: Tensor) -> Tensor:
        name, k = type(self).__name__, self._spatial
        if input.ndim not in (k + 1, k + 2):
            raise ValueError(f"{name}: expected {k + 1}-d (unbatched) or {k + 2}-d input, "
                             f"got shape {input.shape}")
        unbatched = input.ndim == k + 1
        x = input.unsqueeze(0) if unbatched else input
        if x.shape[1] != self.num_features:
            raise ValueError(f"{name}: expected input with {self.num_features} channels (dim "
                             f"{0 if unbatched else 1}), got shape {input.shape}")
        use_input_stats = self.training or not self.track_running_stats
        momentum = 0.0 if self.momentum is None else self.momentum
        y = F.instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias, use_input_stats,
                            momentum, self.eps)
        return y.squeeze(0) if unbatched else y


class InstanceNorm1d(_InstanceNorm):
    """InstanceNorm over (N, C, L) or (C, L) input."""

    _spatial = 1


class InstanceNorm2d(_InstanceNorm):
    """InstanceNorm over (N, C, H, W) or (C, H, W) input (style transfer's normalisation)."""

    _spatial = 2


class InstanceNorm3d(_InstanceNorm):
    """InstanceNorm over (N, C, D, H, W) or (C, D, H, W) input."""

    _spatial = 3


class LayerNorm(Module):
    """Normalise over the trailing dims ``normalized_shape`` (biased variance), then an
    elementwise affine with ``weight``/``bias`` of shape ``normalized_shape`` (ones, zeros)."""

    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True,
                 device: str | None = None, dtype: Any = None) -> None:
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps, self.elementwise_affine = shape, eps, elementwise_affine
        self.weight = empty_parameter(shape, dtype, device) if elementwise_affine else None
        self.bias = empty_parameter(shape, dtype, device) if elementwise_affine and bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _reset_affine(self.weight, self.bias)

    def forward(self, input: Tensor) -> Tensor:
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")


class GroupNorm(Module):
    """Normalise each of ``num_groups`` channel groups per sample; per-channel affine
    ``weight``/``bias`` of shape (num_channels,) (ones, zeros)."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
                 device: str | None = None, dtype: Any = None, *, bias: bool = True) -> None:
        super().__init__()
        if num_groups <= 0 or num_channels % num_groups != 0:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by "
                             f"num_groups ({num_groups})")
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        self.weight = empty_parameter((num_channels,), dtype, device) if affine else None
        self.bias = empty_parameter((num_channels,), dtype, device) if affine and bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _reset_affine(self.weight, self.bias)

    def forward(self, input: Tensor) -> Tensor:
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, bias={self.bias is not None}"


class LocalResponseNorm(Module):
    """b_c = a_c / (k + alpha/size * sum of a^2 over the ``size`` neighbouring channels)^beta
    (AlexNet; PyTorch divides alpha by size). No parameters."""

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> None:
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, input: Tensor) -> Tensor:
        return F.local_response_norm(input, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
