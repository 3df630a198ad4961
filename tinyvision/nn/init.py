"""Weight initialisation, PyTorch's ``torch.nn.init`` formulas and names.

Every function fills its tensor in place (no graph) and returns it. The values are drawn in
float64 from tinyvision's CPU generator (``tinyvision.manual_seed`` makes them repeatable),
then cast to the tensor's dtype and copied to its device: one code path for every device.
PyTorch's generator differs, so the *distributions* match PyTorch, not the values.

Fans, for a weight of shape (out, in, *kernel) (Linear: (out, in); Conv2d: (out, in/groups, kH, kW)):

    fan_in  = in  * prod(kernel)          fan_out = out * prod(kernel)
"""
from __future__ import annotations

import contextlib
import math
import sys
from typing import Any, Iterator

import numpy as np

from tinyvision.autograd.tensor import Tensor
from tinyvision.kernels import compat
from tinyvision.random import generator

_LINEAR_LIKE = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                "conv_transpose3d", "sigmoid")


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The factor that keeps activation variance steady through ``nonlinearity``:
    1 for linear/conv/sigmoid, 5/3 for tanh, sqrt(2) for relu,
    sqrt(2 / (1 + slope^2)) for leaky_relu (slope ``param``, default 0.01), 3/4 for selu."""
    if nonlinearity in _LINEAR_LIKE:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        if isinstance(slope, bool) or not isinstance(slope, (int, float)):
            raise ValueError(f"calculate_gain: negative_slope {slope!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}; choose one of "
                     f"{_LINEAR_LIKE + ('tanh', 'relu', 'leaky_relu', 'selu')}")


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) as defined in the module docstring; needs at least 2 dims."""
    if tensor.ndim < 2:
        raise ValueError(f"fan in and fan out can not be computed for a tensor with fewer than 2 "
                         f"dimensions, got shape {tensor.shape}")
    receptive_field = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive_field, tensor.shape[0] * receptive_field


def _calculate_correct_fan(tensor: Tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _fill(tensor: Tensor, values: Any) -> Tensor:
    """Write ``values`` (NumPy, float64) into ``tensor``'s array, in place, without a graph."""
    values = np.asarray(values).astype(tensor.dtype, copy=False)
    tensor.data[...] = compat.to_device(values, tensor.device)
    return tensor


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """Fill with U(a, b)."""
    if a > b:
        raise ValueError(f"uniform_: expected a <= b, got a={a}, b={b}")
    return _fill(tensor, generator("cpu").uniform(a, b, tensor.shape))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Fill with N(mean, std^2)."""
    if std < 0:
        raise ValueError(f"normal_: std must be non-negative, got {std}")
    return _fill(tensor, generator("cpu").normal(mean, std, tensor.shape))


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0,
                  b: float = 2.0) -> Tensor:
    """Fill with N(mean, std^2) truncated to [a, b] (absolute bounds, as torch and timm).

    Inverse-CDF sampling: draw u uniformly between Phi((a-mean)/std) and Phi((b-mean)/std),
    where Phi is the standard normal CDF, and return mean + std * Phi^-1(u).
    """
    if not a < b:
        raise ValueError(f"trunc_normal_: expected a < b, got a={a}, b={b}")
    if std <= 0:
        raise ValueError(f"trunc_normal_: std must be positive, got {std}")
    from scipy.special import ndtr, ndtri  # Phi and Phi^-1

    lo, hi = ndtr((a - mean) / std), ndtr((b - mean) / std)
    u = generator("cpu").uniform(lo, hi, tensor.shape)
    return _fill(tensor, np.clip(mean + std * ndtri(u), a, b))


def constant_(tensor: Tensor, val: float) -> Tensor:
    return _fill(tensor, np.full(tensor.shape, val))


def zeros_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 0.0)


def ones_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 1.0)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """Glorot: U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    bound = math.sqrt(3.0) * std  # U(-a, a) has standard deviation a / sqrt(3)
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """Glorot: N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)))


def _kaiming_std(tensor: Tensor, a: float, mode: str, nonlinearity: str) -> float:
    """He: std = gain / sqrt(fan), with the fan picked by ``mode``."""
    fan = _calculate_correct_fan(tensor, mode)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan) if fan else 0.0  # fan 0: empty tensor


def kaiming_uniform_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu") -> Tensor:
    """He: U(-bound, bound) with bound = sqrt(3) * gain / sqrt(fan). Linear and Conv use
    a=sqrt(5), which gives bound = 1 / sqrt(fan_in)."""
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu") -> Tensor:
    """He: N(0, std^2) with std = gain / sqrt(fan)."""
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity))


@contextlib.contextmanager
def skip_init() -> Iterator[None]:
    """Within the block, every init function above leaves its tensor as it is (the zeros of
    ``empty_parameter``) and draws nothing. For building a model only to read its shapes
    (``tinyvision models`` counts VGG-16's 138 M parameters this way in milliseconds) or to
    load weights into it. Not thread-safe: it swaps this module's functions for the block."""
    module = sys.modules[__name__]
    names = [n for n in ("uniform_", "normal_", "trunc_normal_", "constant_", "zeros_", "ones_",
                         "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_")
             if hasattr(module, n)]
    saved = {n: getattr(module, n) for n in names}
    for n in names:
        setattr(module, n, lambda tensor, *args, **kwargs: tensor)
    try:
        yield
    finally:
        for n, f in saved.items():
            setattr(module, n, f)
