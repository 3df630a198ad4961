"""Small helpers shared by the ops: dims, operands and argument checks."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from tinyvision.kernels.compat import array_module
from tinyvision.kernels.reference.conv import conv_output_size


def normalize_dim(dim: int, ndim: int, op: str) -> int:
    """A non-negative axis; a dim out of range names the op, the dim and the rank."""
    rank = max(ndim, 1)
    if not -rank <= dim < rank:
        raise IndexError(f"{op}: dim {dim} is out of range for a tensor of {ndim} dims "
                         f"(expected {-rank}..{rank - 1})")
    return dim % rank


def normalize_dims(dim: int | Sequence[int] | None, ndim: int, op: str) -> tuple[int, ...]:
    """``dim`` as a sorted tuple of non-negative axes; None means every axis."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
    axes = tuple(sorted({normalize_dim(int(d), ndim, op) for d in dims}))
    if ndim == 0:
        return ()
    if len(axes) != len(dims):
        raise ValueError(f"{op}: dim {dim} names an axis twice")
    return axes


def check_broadcast(op: str, a: Any, b: Any) -> None:
    """Raise a clear error when two shapes cannot broadcast, naming both and the op."""
    sa, sb = getattr(a, "shape", ()), getattr(b, "shape", ())
    if sa == sb:  # the common case, and a quarter of a small op's overhead otherwise
        return
    try:
        np.broadcast_shapes(sa, sb)
    except ValueError:
        raise ValueError(f"{op}: shapes {tuple(sa)} and {tuple(sb)} cannot be broadcast together") from None


def like(value: Any, ref: Any):
    """A Python number or array as an array on ref's device (dtype left to promotion)."""
    return array_module(ref).asarray(value)


def expand_reduced(grad: Any, shape: tuple[int, ...], axes: tuple[int, ...], keepdim: bool):
    """Bring the gradient of a reduction back to a shape that broadcasts against the input."""
    if not keepdim:
        grad = array_module(grad).expand_dims(grad, axes) if axes else grad
    return grad


def ntuple(op: str, name: str, value: Any, n: int = 2, minimum: int = 0) -> tuple[int, ...]:
    """An int, or a sequence of 1 or ``n`` ints, as an ``n``-tuple of ints, each >= ``minimum``.

    The one place that turns ``kernel_size=3`` into (3, 3) (or (3,) / (3, 3, 3)) for every
    conv, pool, window and layer; the error names the op, the argument and the value.
    """
    what = "an int or a pair of ints" if n == 2 else f"an int or a tuple of {n} ints"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        values: tuple = (value,) * n
    elif isinstance(value, (tuple, list)):
        values = tuple(value) * n if len(value) == 1 else tuple(value)
        if len(values) != n:
            raise ValueError(f"{op}: {name} must be {what}, got {value!r} ({len(value)} values)")
    else:
        raise TypeError(f"{op}: {name} must be {what}, got {value!r}")
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        raise TypeError(f"{op}: {name} must be {what}, got {value!r}")
    if min(values) < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {value!r}")
    return tuple(int(v) for v in values)


def pair(op: str, name: str, value: Any, minimum: int = 0) -> tuple[int, int]:
    """``ntuple`` with n = 2: the spatial (H, W) arguments of the 2-D ops."""
    return ntuple(op, name, value, 2, minimum)  # type: ignore[return-value]


_AXES = {1: ("length",), 2: ("height", "width"), 3: ("depth", "height", "width")}


def output_sizes(op: str, spatial: Sequence[int], kernel_size: Sequence[int], stride: Sequence[int],
                 padding: Sequence[int], dilation: Sequence[int], ceil_mode: bool = False) -> tuple[int, ...]:
    """``conv_output_size`` along each spatial axis (the one formula for every conv and pool);
    a size below 1 names the axis and every argument that produced it."""
    out = []
    axes = _AXES.get(len(spatial), tuple(f"dim {i}" for i in range(len(spatial))))
    for axis, size, k, s, p, d in zip(axes, spatial, kernel_size, stride, padding, dilation):
        n = conv_output_size(size, k, s, p, d, ceil_mode)
        if n < 1:
            raise ValueError(
                f"{op}: output {axis} would be {n}: (input {size} + 2*padding {p} - dilation {d} * "
                f"(kernel_size {k} - 1) - 1) // stride {s} + 1 < 1; the dilated kernel "
                f"({d * (k - 1) + 1}) is larger than the padded input ({size + 2 * p}) "
                f"[output size with kernel_size={tuple(kernel_size)}, stride={tuple(stride)}, "
                f"padding={tuple(padding)}, dilation={tuple(dilation)}]")
        out.append(n)
    return tuple(out)
