"""Small helpers shared by the ops: dims, operands and argument checks."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from tinyvision.kernels.compat import array_module


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


def pair(op: str, name: str, value: Any, minimum: int) -> tuple[int, int]:
    """An int, or a tuple of one or two ints, as a pair; each >= ``minimum``."""
    if isinstance(value, (int, np.integer)):
        value = (value, value)
    pair = tuple(value) if isinstance(value, (tuple, list)) else ()
    if len(pair) == 1:
        pair = pair * 2
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in pair):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {value!r}")
    return int(pair[0]), int(pair[1])
