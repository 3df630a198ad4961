"""Small helpers shared by the ops: dims, operands and argument checks."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from tinyvision.kernels.compat import array_module
from tinyvision.kernels.reference.conv import conv_output_size


def normalize_dim(dim: int, ndim: int, op: str) -> int:
    """A non-negative axis; a dim out of range names the op, the dim and the rank."""
    if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{op}: dim must be an int, got {dim!r} ({type(dim).__name__})")
    rank = max(ndim, 1)
    if not -rank <= dim < rank:
        raise IndexError(f"{op}: dim {dim} is out of range for a tensor of {ndim} dims "
                         f"(expected {-rank}..{rank - 1})")
    return dim % rank


def normalize_dims(dim: int | Sequence[int] | None, ndim: int, op: str) -> tuple[int, ...]:
    """``dim`` as a sorted tuple of non-negative axes; None means every axis."""
    if dim is None:
        return tuple(range(ndim))
    dims = int_sizes(op, "dim", dim)
    axes = tuple(sorted({normalize_dim(d, ndim, op) for d in dims}))
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


# ---------------------------------------------------------------- argument checks shared by the ops
# Each op calls these at its top, so that a wrong argument fails there, with the op's name and the
# argument's, instead of deep inside NumPy or a Numba kernel (or, worse, not at all). The rule for
# dtypes is written down in docs/autograd.md ("dtype promotion and what is refused").

def check_tensor(op: str, name: str, value: Any, arrays: bool = False) -> None:
    """A Tensor (or, with ``arrays``, also a NumPy/CuPy array), never a list: PyTorch's ops take
    no lists where a tensor is expected."""
    from tinyvision.autograd.tensor import Tensor  # autograd sits below functional; imported late
    if isinstance(value, Tensor) or (arrays and hasattr(value, "__array__") and hasattr(value, "dtype")):
        return
    raise TypeError(f"{op}: {name} must be a Tensor{' or an array' if arrays else ''}, "
                    f"got {type(value).__name__}")


def check_floating(op: str, name: str, value: Any, why: str = "") -> None:
    """A floating-point Tensor: ops that compute fractions (softmax, means, norms, interpolation
    weights) refuse integers and bools as PyTorch does, rather than truncate or promote silently."""
    check_tensor(op, name, value)
    if np.dtype(value.dtype).kind != "f":
        raise TypeError(f"{op}: {name} must be a floating-point tensor{why}, got dtype {value.dtype}; "
                        f"cast it first, e.g. {name}.float()")


def int_sizes(op: str, name: str, values: Any) -> tuple[int, ...]:
    """An int or a sequence of ints (NumPy integers too) as a tuple; a float, a bool or anything
    else is refused (PyTorch's rule: ``reshape(x, (2.5, -1))`` is a TypeError, not (2, -1))."""
    seq = (values,) if isinstance(values, (int, np.integer)) else values
    if isinstance(seq, np.ndarray) and seq.ndim == 1:
        seq = seq.tolist()
    if not isinstance(seq, (tuple, list, range)):
        raise TypeError(f"{op}: {name} must be an int or a sequence of ints, got {type(values).__name__}")
    seq = tuple(seq)
    for i, v in enumerate(seq):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{op}: {name} must hold ints, got {v!r} ({type(v).__name__}) at position {i} "
                            f"of {values!r}")
    return tuple(int(v) for v in seq)


def real_number(op: str, name: str, value: Any) -> float | int:
    """A Python or NumPy real scalar (bools count, as in PyTorch), returned unchanged."""
    if not isinstance(value, (int, float, np.integer, np.floating, np.bool_)):
        raise TypeError(f"{op}: {name} must be a number, got {value!r} ({type(value).__name__})")
    return value


def tensor_list(op: str, name: str, tensors: Any) -> list:
    """A non-empty list or tuple of Tensors. A single Tensor is refused (it iterates over its
    first dim, so ``cat(t)`` would silently join t's rows)."""
    from tinyvision.autograd.tensor import Tensor
    if isinstance(tensors, Tensor) or not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{op}: {name} must be a list or tuple of Tensors, got {type(tensors).__name__}")
    if not tensors:
        raise ValueError(f"{op}: expected a non-empty list of tensors")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name}[{i}] must be a Tensor, got {type(t).__name__}")
    return list(tensors)


def check_eps(op: str, eps: Any) -> float:
    """A normalisation's eps: a number >= 0 (a negative eps makes var + eps negative: NaN)."""
    real_number(op, "eps", eps)
    if not eps >= 0:  # also refuses NaN
        raise ValueError(f"{op}: eps must be >= 0, got {eps}")
    return float(eps)
