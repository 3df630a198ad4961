"""Tensor: one array (NumPy or CuPy), its gradient, and the node that made it.

The maths lives in ``tinyvision.functional``; the methods here are one-line doors into it, so
that ``x.exp().sum()`` reads as in PyTorch and the op's forward and backward stay together in
one class over there.
"""
from __future__ import annotations

import itertools
from typing import Any, Iterator, Sequence

import numpy as np

from tinyvision.autograd.function import Node, is_grad_enabled, run_backward
from tinyvision.kernels import compat

_default_dtype = np.dtype(np.float32)
_hook_ids = itertools.count()


def get_default_dtype() -> np.dtype:
    return _default_dtype


def set_default_dtype(dtype: Any) -> None:
    """The float dtype of new tensors made from Python floats (float32 unless changed)."""
    global _default_dtype
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"default dtype must be a floating type, got {dtype}")
    _default_dtype = dtype


def _is_float(dtype: np.dtype) -> bool:
    return np.dtype(dtype).kind == "f"


class Tensor:
    """An n-dimensional array that can record the ops applied to it.

    ``data`` is the raw ``numpy.ndarray`` or ``cupy.ndarray``; ``grad`` is a Tensor of the
    same shape, filled by ``backward()``; ``grad_fn`` is the recorded op (None for a leaf).
    """

    __array_ufunc__ = None  # so `ndarray + Tensor` calls Tensor.__radd__ instead of NumPy
    __slots__ = ("data", "grad", "grad_fn", "_requires_grad", "_retains_grad", "_post_accumulate_hooks",
                 "__weakref__")

    def __init__(self, data: Any, requires_grad: bool = False, grad_fn: Node | None = None) -> None:
        if not compat.is_array(data):
            data = np.asarray(data)
        self.data = data
        self.grad: Tensor | None = None
        self.grad_fn = grad_fn
        self._requires_grad = False
        self._retains_grad = False
        self._post_accumulate_hooks: dict[int, Any] | None = None  # made on first register
        self.requires_grad = requires_grad or grad_fn is not None

    # ----------------------------------------------------------------- autograd state
    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        if flag and not _is_float(self.dtype):
            raise RuntimeError(
                f"only floating point tensors can require gradients, got dtype {self.dtype}"
            )
        if not flag and self.grad_fn is not None:
            raise RuntimeError("requires_grad can only be switched off on a leaf; use .detach()")
        self._requires_grad = bool(flag)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        self.requires_grad = requires_grad
        return self

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    def retain_grad(self) -> None:
        """Keep ``.grad`` on a non-leaf tensor too (leaves always keep theirs)."""
        self._retains_grad = True

    def register_post_accumulate_grad_hook(self, hook: Any) -> Any:
        """On a leaf: ``hook(tensor)`` runs during ``backward()`` as soon as this tensor's
        ``.grad`` holds its whole gradient for that backward (as in PyTorch). Returns a handle
        whose ``.remove()`` unregisters the hook."""
        if self.grad_fn is not None:
            raise RuntimeError("register_post_accumulate_grad_hook: only leaf tensors accumulate "
                               "gradients; use register_hook on a non-leaf")
        if self._post_accumulate_hooks is None:
            self._post_accumulate_hooks = {}
        key = next(_hook_ids)
        self._post_accumulate_hooks[key] = hook
        return _HookHandle(self._post_accumulate_hooks, key)

    def _accumulate_grad(self, g: Any) -> None:
        if self.grad is None:
            self.grad = Tensor(self._xp.array(g, dtype=self.dtype, copy=True))
        else:
            self.grad.data += g

    def backward(self, gradient: "Tensor | Any" = None, retain_graph: bool = False) -> None:
        """Fill ``.grad`` of every leaf this tensor depends on with dself/dleaf.

        ``gradient`` is dL/dself, of self's shape; it may be left out only for a scalar
        (then it is 1). Leaf gradients accumulate across calls, as in PyTorch.
        """
        if not self.requires_grad:
            raise RuntimeError("backward(): this tensor does not require grad and has no grad_fn")
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward(): grad can be implicitly created only for scalar outputs, "
                    f"but this tensor has shape {self.shape}; pass gradient= of that shape"
                )
            g = self._xp.ones(self.shape, dtype=self.dtype)
        else:
            g = gradient.data if isinstance(gradient, Tensor) else self._xp.asarray(gradient)
            if tuple(g.shape) != self.shape:
                raise RuntimeError(
                    f"backward(): gradient has shape {tuple(g.shape)} but the tensor has shape {self.shape}"
                )
            g = g.astype(self.dtype, copy=False)
        if self.grad_fn is None:
            self._accumulate_grad(g)
        else:
            run_backward(self, g, retain_graph)

    def detach(self) -> "Tensor":
        """The same array, cut from the graph (no copy)."""
        return Tensor(self.data)

    # ----------------------------------------------------------------- array facts
    @property
    def _xp(self):
        return compat.array_module(self.data)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def device(self) -> str:
        return compat.device_of(self.data)

    @property
    def ndim(self) -> int:
        return self.data.ndim

    def dim(self) -> int:
        return self.data.ndim

    def size(self, dim: int | None = None) -> tuple[int, ...] | int:
        return self.shape if dim is None else self.shape[dim]

    def numel(self) -> int:
        return int(self.data.size)

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self) -> Iterator["Tensor"]:
        return (self[i] for i in range(len(self)))

    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (copied from the GPU if needed). Refuses a graph member
        that requires grad, as PyTorch does: call ``.detach().numpy()``."""
        if self.requires_grad:
            raise RuntimeError("can't call numpy() on a tensor that requires grad; use .detach().numpy()")
        return compat.to_numpy(self.data)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        a = compat.to_numpy(self.data)
        return a.astype(dtype) if dtype is not None else a

    def item(self) -> float | int | bool:
        if self.data.size != 1:
            raise ValueError(f"item(): only one-element tensors can be converted, got shape {self.shape}")
        return self.data.reshape(()).item()

    def tolist(self) -> Any:
        return compat.to_numpy(self.data).tolist()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        return bool(self.item())

    def __hash__(self) -> int:  # __eq__ is elementwise, so hash by identity as PyTorch does
        return id(self)

    def __repr__(self) -> str:
        body = np.array2string(compat.to_numpy(self.data), separator=", ", precision=4, prefix="tensor(")
        extra = ""
        if self.dtype != _default_dtype and self.dtype != np.int64 and self.dtype != np.bool_:
            extra += f", dtype={self.dtype}"
        if self.device != "cpu":
            extra += f", device='{self.device}'"
        if self.grad_fn is not None:
            extra += f", grad_fn={self.grad_fn!r}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    # ----------------------------------------------------------------- devices and dtypes
    def to(self, *args: Any, dtype: Any = None, device: str | None = None) -> "Tensor":
        """``t.to('cuda')``, ``t.to(np.float64)``, ``t.to('cpu', np.float32)``: differentiable."""
        for a in args:
            if isinstance(a, str):
                device = a
            else:
                dtype = a
        out = self
        if dtype is not None and np.dtype(dtype) != self.dtype:
            out = F.cast(out, np.dtype(dtype))
        if device is not None and compat.check_device(device) != out.device:
            out = F.to_device(out, device)
        return out

    def cpu(self) -> "Tensor":
        return self.to("cpu")

    def cuda(self) -> "Tensor":
        return self.to("cuda")

    def float(self) -> "Tensor":
        return self.to(np.float32)

    def double(self) -> "Tensor":
        return self.to(np.float64)

    def long(self) -> "Tensor":
        return self.to(np.int64)

    def int(self) -> "Tensor":
        return self.to(np.int32)

    def bool(self) -> "Tensor":
        return self.to(np.bool_)

    def type_as(self, other: "Tensor") -> "Tensor":
        return self.to(other.dtype)

    def clone(self) -> "Tensor":
        return F.clone(self)

    # ----------------------------------------------------------------- in place (no graph)
    def _check_inplace(self, what: str) -> None:
        if self.requires_grad and is_grad_enabled():
            raise RuntimeError(
                f"{what}: in-place change of a tensor that requires grad would corrupt the "
                "graph; do it inside tinyvision.no_grad() or on .detach()"
            )

    def __setitem__(self, index: Any, value: Any) -> None:
        self._check_inplace("__setitem__")
        self.data[F.unwrap_index(index)] = value.data if isinstance(value, Tensor) else value

    def copy_(self, src: "Tensor | Any") -> "Tensor":
        self._check_inplace("copy_")
        src = src.data if isinstance(src, Tensor) else src
        self.data[...] = compat.to_device(self._xp.asarray(src) if compat.is_array(src) else np.asarray(src), self.device)
        return self

    def fill_(self, value: float) -> "Tensor":
        self._check_inplace("fill_")
        self.data[...] = value
        return self

    def zero_(self) -> "Tensor":
        return self.fill_(0)

    # ----------------------------------------------------------------- operators
    def __add__(self, other: Any) -> "Tensor": return F.add(self, other)
    def __radd__(self, other: Any) -> "Tensor": return F.add(other, self)
    def __sub__(self, other: Any) -> "Tensor": return F.sub(self, other)
    def __rsub__(self, other: Any) -> "Tensor": return F.sub(other, self)
    def __mul__(self, other: Any) -> "Tensor": return F.mul(self, other)
    def __rmul__(self, other: Any) -> "Tensor": return F.mul(other, self)
    def __truediv__(self, other: Any) -> "Tensor": return F.div(self, other)
    def __rtruediv__(self, other: Any) -> "Tensor": return F.div(other, self)
    def __pow__(self, other: Any) -> "Tensor": return F.pow(self, other)
    def __rpow__(self, other: Any) -> "Tensor": return F.pow(other, self)
    def __matmul__(self, other: Any) -> "Tensor": return F.matmul(self, other)
    def __rmatmul__(self, other: Any) -> "Tensor": return F.matmul(other, self)
    def __neg__(self) -> "Tensor": return F.neg(self)
    def __abs__(self) -> "Tensor": return F.abs(self)
    def __getitem__(self, index: Any) -> "Tensor": return F.getitem(self, index)
    # comparisons give bool tensors and carry no gradient
    def __eq__(self, other: Any) -> "Tensor": return F.eq(self, other)  # type: ignore[override]
    def __ne__(self, other: Any) -> "Tensor": return F.ne(self, other)  # type: ignore[override]
    def __lt__(self, other: Any) -> "Tensor": return F.lt(self, other)
    def __le__(self, other: Any) -> "Tensor": return F.le(self, other)
    def __gt__(self, other: Any) -> "Tensor": return F.gt(self, other)
    def __ge__(self, other: Any) -> "Tensor": return F.ge(self, other)
    def __invert__(self) -> "Tensor": return F.logical_not(self)
    def __and__(self, other: Any) -> "Tensor": return F.logical_and(self, other)
    def __or__(self, other: Any) -> "Tensor": return F.logical_or(self, other)

    # ----------------------------------------------------------------- methods (see functional)
    def add(self, other: Any) -> "Tensor": return F.add(self, other)
    def sub(self, other: Any) -> "Tensor": return F.sub(self, other)
    def mul(self, other: Any) -> "Tensor": return F.mul(self, other)
    def div(self, other: Any) -> "Tensor": return F.div(self, other)
    def pow(self, exponent: Any) -> "Tensor": return F.pow(self, exponent)
    def matmul(self, other: Any) -> "Tensor": return F.matmul(self, other)
    def neg(self) -> "Tensor": return F.neg(self)
    def abs(self) -> "Tensor": return F.abs(self)
    def exp(self) -> "Tensor": return F.exp(self)
    def log(self) -> "Tensor": return F.log(self)
    def log1p(self) -> "Tensor": return F.log1p(self)
    def sqrt(self) -> "Tensor": return F.sqrt(self)
    def rsqrt(self) -> "Tensor": return F.rsqrt(self)
    def sin(self) -> "Tensor": return F.sin(self)
    def cos(self) -> "Tensor": return F.cos(self)
    def tanh(self) -> "Tensor": return F.tanh(self)
    def sigmoid(self) -> "Tensor": return F.sigmoid(self)
    def relu(self) -> "Tensor": return F.relu(self)
    def clamp(self, min: Any = None, max: Any = None) -> "Tensor": return F.clamp(self, min, max)
    clip = clamp
    def maximum(self, other: Any) -> "Tensor": return F.maximum(self, other)
    def minimum(self, other: Any) -> "Tensor": return F.minimum(self, other)
    def where(self, condition: Any, other: Any) -> "Tensor": return F.where(condition, self, other)
    def masked_fill(self, mask: Any, value: Any) -> "Tensor": return F.masked_fill(self, mask, value)

    def sum(self, dim: Any = None, keepdim: bool = False) -> "Tensor": return F.sum(self, dim, keepdim)
    def mean(self, dim: Any = None, keepdim: bool = False) -> "Tensor": return F.mean(self, dim, keepdim)
    def var(self, dim: Any = None, keepdim: bool = False, *, correction: int = 1) -> "Tensor":
        return F.var(self, dim, keepdim=keepdim, correction=correction)
    def std(self, dim: Any = None, keepdim: bool = False, *, correction: int = 1) -> "Tensor":
        return F.std(self, dim, keepdim=keepdim, correction=correction)
    def max(self, dim: Any = None, keepdim: bool = False) -> Any: return F.max(self, dim, keepdim)
    def min(self, dim: Any = None, keepdim: bool = False) -> Any: return F.min(self, dim, keepdim)
    def amax(self, dim: Any = None, keepdim: bool = False) -> "Tensor": return F.amax(self, dim, keepdim)
    def amin(self, dim: Any = None, keepdim: bool = False) -> "Tensor": return F.amin(self, dim, keepdim)
    def argmax(self, dim: int | None = None, keepdim: bool = False) -> "Tensor": return F.argmax(self, dim, keepdim)
    def argmin(self, dim: int | None = None, keepdim: bool = False) -> "Tensor": return F.argmin(self, dim, keepdim)
    def logsumexp(self, dim: Any, keepdim: bool = False) -> "Tensor": return F.logsumexp(self, dim, keepdim)
    def prod(self, dim: Any = None, keepdim: bool = False) -> "Tensor": return F.prod(self, dim, keepdim)
    def norm(self, p: Any = 2, dim: Any = None, keepdim: bool = False) -> "Tensor": return F.norm(self, p, dim, keepdim)
    def softmax(self, dim: int) -> "Tensor": return F.softmax(self, dim)
    def log_softmax(self, dim: int) -> "Tensor": return F.log_softmax(self, dim)

    def reshape(self, *shape: Any) -> "Tensor": return F.reshape(self, _shape_args(shape))
    def view(self, *shape: Any) -> "Tensor": return F.reshape(self, _shape_args(shape))
    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> "Tensor": return F.flatten(self, start_dim, end_dim)
    def unflatten(self, dim: int, sizes: Sequence[int]) -> "Tensor": return F.unflatten(self, dim, sizes)
    def permute(self, *dims: Any) -> "Tensor": return F.permute(self, _shape_args(dims))
    def transpose(self, dim0: int, dim1: int) -> "Tensor": return F.transpose(self, dim0, dim1)
    swapaxes = transpose
    def movedim(self, source: Any, destination: Any) -> "Tensor": return F.movedim(self, source, destination)
    @property
    def T(self) -> "Tensor": return F.permute(self, tuple(range(self.ndim))[::-1])
    @property
    def mT(self) -> "Tensor": return F.transpose(self, -2, -1)
    def squeeze(self, dim: Any = None) -> "Tensor": return F.squeeze(self, dim)
    def unsqueeze(self, dim: int) -> "Tensor": return F.unsqueeze(self, dim)
    def expand(self, *sizes: Any) -> "Tensor": return F.expand(self, _shape_args(sizes))
    def expand_as(self, other: "Tensor") -> "Tensor": return F.broadcast_to(self, other.shape)
    def broadcast_to(self, shape: Sequence[int]) -> "Tensor": return F.broadcast_to(self, shape)
    def repeat(self, *repeats: Any) -> "Tensor": return F.repeat(self, _shape_args(repeats))
    def tile(self, *dims: Any) -> "Tensor": return F.tile(self, _shape_args(dims))
    def flip(self, *dims: Any) -> "Tensor": return F.flip(self, _shape_args(dims))
    def roll(self, shifts: Any, dims: Any = None) -> "Tensor": return F.roll(self, shifts, dims)
    def split(self, split_size_or_sections: Any, dim: int = 0) -> list["Tensor"]: return F.split(self, split_size_or_sections, dim)
    def chunk(self, chunks: int, dim: int = 0) -> list["Tensor"]: return F.chunk(self, chunks, dim)
    def gather(self, dim: int, index: Any) -> "Tensor": return F.gather(self, dim, index)
    def index_select(self, dim: int, index: Any) -> "Tensor": return F.index_select(self, dim, index)
    def contiguous(self) -> "Tensor": return self


class _HookHandle:
    """``.remove()`` takes one hook out of the dict it was registered in."""

    def __init__(self, hooks: dict, key: int) -> None:
        self.hooks, self.key = hooks, key

    def remove(self) -> None:
        self.hooks.pop(self.key, None)


def _shape_args(args: tuple) -> tuple:
    """Accept both ``t.reshape(2, 3)`` and ``t.reshape((2, 3))``, as PyTorch does."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    return tuple(args)


from tinyvision import functional as F  # noqa: E402  (functional needs Tensor defined first)
