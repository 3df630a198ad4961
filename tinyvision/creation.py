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
