"""Making tensors: from data, filled, ranges and random draws (PyTorch's names and defaults)."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from tinyvision.autograd.tensor import Tensor, get_default_dtype
from tinyvision.kernels import compat
from tinyvision.random import generator


def _size(size: tuple) -> tuple[int, ...]:
    """Accept ``zeros(2, 3)`` and ``zeros((2, 3))``."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    if any(int(s) < 0 for s in size):
        raise ValueError(f"size must be non-negative, got {tuple(size)}")
    return tuple(int(s) for s in size)


def _make(array: Any, dtype: Any, device: str | None, requires_grad: bool) -> Tensor:
    if dtype is not None:
        array = array.astype(dtype, copy=False)
    if device is not None:
        array = compat.to_device(array, device)
    return Tensor(array, requires_grad=requires_grad)


def tensor(data: Any, dtype: Any = None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data`` (nested lists, scalars, arrays, Tensors).

    Python floats become the default dtype (float32), Python ints int64, bools bool, as in
    PyTorch; a NumPy array keeps its dtype. ``device=None`` keeps the data's device (a CuPy
    array stays on the GPU, Python data goes to the CPU).
    """
    if isinstance(data, Tensor):
        data = data.data
    if compat.is_array(data):
        array = data.copy()
    else:
        array = np.array(data)
        if array.dtype == np.float64 and not isinstance(data, np.generic) and dtype is None:
            array = array.astype(get_default_dtype())  # not when dtype is given: no float32 detour
        elif array.dtype.kind == "O":
            raise TypeError(f"tensor: cannot make a tensor from {type(data).__name__} data")
    return _make(array, dtype, device, requires_grad)


def from_numpy(array: np.ndarray) -> Tensor:
    """Wrap a NumPy array without copying (they share memory)."""
    return Tensor(np.asarray(array))


def _filled(fill: Any, size: tuple, dtype: Any, device: str, requires_grad: bool) -> Tensor:
    dtype = np.dtype(dtype or get_default_dtype())
    return _make(np.full(_size(size), fill, dtype=dtype), None, device, requires_grad)


def zeros(*size: Any, dtype: Any = None, device: str = "cpu", requires_grad: bool = False) -> Tensor:
    return _filled(0, size, dtype, device, requires_grad)


def ones(*size: Any, dtype: Any = None, device: str = "cpu", requires_grad: bool = False) -> Tensor:
    return _filled(1, size, dtype, device, requires_grad)


def empty(*size: Any, dtype: Any = None, device: str = "cpu", requires_grad: bool = False) -> Tensor:
    return _filled(0, size, dtype, device, requires_grad)


def full(size: Sequence[int], fill_value: Any, dtype: Any = None, device: str = "cpu",
         requires_grad: bool = False) -> Tensor:
    if dtype is None and isinstance(fill_value, bool):
        dtype = np.bool_
    elif dtype is None and isinstance(fill_value, int):
        dtype = np.int64
    return _filled(fill_value, (tuple(size),), dtype, device, requires_grad)


def eye(n: int, m: int | None = None, dtype: Any = None, device: str = "cpu") -> Tensor:
    return _make(np.eye(n, m, dtype=dtype or get_default_dtype()), None, device, False)


def arange(start: float, end: float | None = None, step: float = 1, dtype: Any = None,
           device: str = "cpu", requires_grad: bool = False) -> Tensor:
    """[start, end) in steps; int64 when all arguments are ints, else the default float."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        ints = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
        dtype = np.int64 if ints else get_default_dtype()
    return _make(np.arange(start, end, step).astype(dtype), None, device, requires_grad)


def linspace(start: float, end: float, steps: int, dtype: Any = None, device: str = "cpu") -> Tensor:
    return _make(np.linspace(start, end, steps).astype(dtype or get_default_dtype()), None, device, False)


def rand(*size: Any, dtype: Any = None, device: str = "cpu", requires_grad: bool = False) -> Tensor:
    """Uniform on [0, 1), from the generator that ``manual_seed`` seeds."""
    dtype = np.dtype(dtype or get_default_dtype())
    return Tensor(generator(device).random(_size(size), dtype=dtype), requires_grad=requires_grad)


def randn(*size: Any, dtype: Any = None, device: str = "cpu", requires_grad: bool = False) -> Tensor:
    """Standard normal, from the generator that ``manual_seed`` seeds."""
    dtype = np.dtype(dtype or get_default_dtype())
    return Tensor(generator(device).standard_normal(_size(size), dtype=dtype), requires_grad=requires_grad)


def randint(low: int, high: int | Sequence[int], size: Sequence[int] | None = None, dtype: Any = np.int64,
            device: str = "cpu") -> Tensor:
    """Integers uniform on [low, high); ``randint(high, size)`` means low = 0, as in PyTorch."""
    if size is None:
        low, high, size = 0, low, high
    return Tensor(generator(device).integers(low, high, size=_size((size,))).astype(dtype))


def randperm(n: int, device: str = "cpu") -> Tensor:
    return Tensor(generator(device).permutation(n).astype(np.int64))


def zeros_like(t: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return zeros(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def ones_like(t: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return ones(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def empty_like(t: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return zeros_like(t, dtype, requires_grad)


def full_like(t: Tensor, fill_value: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return full(t.shape, fill_value, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def rand_like(t: Tensor, dtype: Any = None) -> Tensor:
    return rand(t.shape, dtype=dtype or t.dtype, device=t.device)


def randn_like(t: Tensor, dtype: Any = None) -> Tensor:
    return randn(t.shape, dtype=dtype or t.dtype, device=t.device)


def is_tensor(obj: Any) -> bool:
    return isinstance(obj, Tensor)


def as_tensor(data: Any, dtype: Any = None, device: str | None = None) -> Tensor:
    """``data`` as a Tensor, sharing memory when it can: a Tensor or an array of the asked
    dtype and device comes back without a copy (a Tensor as itself); anything else is copied
    as by :func:`tensor`."""
    if isinstance(data, Tensor):
        same = (dtype is None or np.dtype(dtype) == data.dtype) and (device is None or compat.check_device(device) == data.device)
        return data if same else data.to(*[a for a in (device, dtype) if a is not None])
    if compat.is_array(data) and (dtype is None or np.dtype(dtype) == data.dtype) and (
            device is None or compat.check_device(device) == compat.device_of(data)):
        return Tensor(data)
    return tensor(data, dtype=dtype, device=device)


# ------------------------------------------------------------------ sampling
def bernoulli(input: Tensor, p: float | None = None) -> Tensor:
    """1 with probability ``input`` (elementwise, in [0, 1]) or ``p``, else 0; input's dtype
    and shape. A draw has no gradient."""
    probs = input.data if p is None else p
    xp = compat.array_module(input.data)
    if p is None and input.numel() and (bool((probs < 0).any()) or bool((probs > 1).any())):
        raise ValueError(f"bernoulli: probabilities must lie in [0, 1], got min {float(probs.min())}, "
                         f"max {float(probs.max())}")
    draws = generator(input.device).random(input.shape) < probs
    return Tensor(xp.asarray(draws).astype(input.dtype))


def multinomial(input: Tensor, num_samples: int, replacement: bool = False) -> Tensor:
    """``num_samples`` category indices per row of weights ``input`` ((n,) or (b, n), not
    normalised, >= 0). With replacement: independent draws (inverse CDF). Without: each
    category at most once, in the order drawn: the categories with the smallest E_i / w_i
    for E_i ~ Exp(1), which is the sequential draw-and-remove process in one step."""
    w = compat.to_numpy(input.data).astype(np.float64)
    if input.ndim not in (1, 2):
        raise ValueError(f"multinomial: input must be 1-D or 2-D, got shape {input.shape}")
    rows = w.reshape(-1, w.shape[-1])
    if not np.isfinite(rows).all() or (rows < 0).any():
        raise ValueError("multinomial: probability tensor contains either inf, nan or element < 0")
    if (rows.sum(axis=1) <= 0).any():
        raise ValueError("multinomial: invalid multinomial distribution (sum of probabilities <= 0) in some row")
    if not replacement and num_samples > int((rows > 0).sum(axis=1).min()):
        raise ValueError(f"multinomial: cannot sample {num_samples} samples without replacement from a row "
                         f"with {int((rows > 0).sum(axis=1).min())} nonzero weights (input shape {input.shape})")
    rng = generator("cpu")
    if replacement:
        cdf = np.cumsum(rows, axis=1)
        u = rng.random((rows.shape[0], num_samples)) * cdf[:, -1:]
        out = np.stack([np.searchsorted(c, v, side="right") for c, v in zip(cdf, u)])
        out = np.minimum(out, rows.shape[1] - 1)  # u == total, after rounding
    else:
        with np.errstate(divide="ignore"):
            keys = rng.exponential(size=rows.shape) / rows  # inf where the weight is 0
        out = np.argsort(keys, axis=1, kind="stable")[:, :num_samples]
    out = out.reshape(w.shape[:-1] + (num_samples,)).astype(np.int64)
    return Tensor(compat.to_device(out, input.device))
