"""Tensor: one array (NumPy or CuPy), its gradient, and the node that made it.

The maths lives in ``tinyvision.functional``; the methods here are one-line doors into it, so
that ``x.exp().sum()`` reads as in PyTorch and the op's forward and backward stay together in
one class over there.
"""
from __future__ import annotations

import importlib
import weakref
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from tinyvision.autograd.function import (Node, RemovableHandle, check_history, is_grad_enabled, no_grad,
                                          run_backward)
from tinyvision.kernels import compat


class _AtCallTime:
    """A module above this one, looked up when a method runs. ``tinyvision.functional`` (the
    ops) and ``tinyvision.creation`` are built on Tensor and import this module; this module
    reaches them only at call time, so imports stay one-way. A name is looked up once."""

    def __init__(self, module: str) -> None:
        self._module = module

    def __getattr__(self, name: str) -> Any:
        value = getattr(importlib.import_module(self._module), name)
        setattr(self, name, value)
        return value


F = _AtCallTime("tinyvision.functional")
creation = _AtCallTime("tinyvision.creation")
random = _AtCallTime("tinyvision.random")


_default_dtype = np.dtype(np.float32)


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
    __slots__ = ("data", "grad", "grad_fn", "_requires_grad", "_version_counter", "_history_mark", "_hooks",
                 "_post_accumulate_hooks", "__weakref__")

    def __init__(self, data: Any, requires_grad: bool = False, grad_fn: Node | None = None,
                 _view_of: "Tensor | None" = None) -> None:
        if not compat.is_array(data):
            data = np.asarray(data)
        self.data = data
        self.grad: Tensor | None = None
        self.grad_fn = grad_fn
        self._requires_grad = False
        # [in-place changes of this memory, how many of them were recorded in a graph], shared
        # with the tensors that view the same memory (views, detach()), so all see a change
        self._version_counter: list[int] = _view_of._version_counter if _view_of is not None else [0, 0]
        # the recorded-change count when grad_fn was set: if another tensor sharing this memory
        # records an in-place change later, this tensor's history is out of date (check_history)
        self._history_mark: int | None = self._version_counter[1]
        self._hooks: dict = {}  # a leaf's register_hook functions (a non-leaf's live on grad_fn)
        self._post_accumulate_hooks: dict | None = None  # made on first register
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

    @property
    def _version(self) -> int:
        """The number of in-place changes to this tensor's memory (PyTorch's ``_version``)."""
        return self._version_counter[0]

    def retain_grad(self) -> None:
        """Keep ``.grad`` on a non-leaf tensor too (leaves always keep theirs)."""
        if self.grad_fn is not None:  # a weak reference: the graph must not keep self alive
            self.grad_fn.retained = weakref.ref(self)

    def register_hook(self, hook: Callable[["Tensor"], "Tensor | None"]) -> RemovableHandle:
        """Call ``hook(grad)`` when this tensor's gradient is computed; a returned Tensor
        replaces the gradient. Returns a handle whose ``remove()`` unregisters it."""
        if not self.requires_grad:
            raise RuntimeError("register_hook: cannot register a hook on a tensor that doesn't require gradient")
        hooks = self._hooks if self.grad_fn is None else self.grad_fn.hooks
        handle = RemovableHandle(hooks)
        hooks[handle.id] = hook
        return handle

    def register_post_accumulate_grad_hook(self, hook: Any) -> Any:
        """On a leaf: ``hook(tensor)`` runs during ``backward()`` as soon as this tensor's
        ``.grad`` holds its whole gradient for that backward (as in PyTorch). Returns a handle
        whose ``.remove()`` unregisters the hook."""
        if self.grad_fn is not None:
            raise RuntimeError("register_post_accumulate_grad_hook: only leaf tensors accumulate "
                               "gradients; use register_hook on a non-leaf")
        if self._post_accumulate_hooks is None:
            self._post_accumulate_hooks = {}
        handle = RemovableHandle(self._post_accumulate_hooks)
        self._post_accumulate_hooks[handle.id] = hook
        return handle

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
        """The same array, cut from the graph (no copy; in-place changes are seen by both)."""
        out = Tensor(self.data, _view_of=self)
        out._history_mark = None  # no history of its own that could go out of date
        return out

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

    def type(self, dtype: Any = None) -> "str | Tensor":
        """With no argument, the type's name ('tinyvision.FloatTensor', as PyTorch's
        'torch.FloatTensor'); with a dtype (or such a name), this tensor cast to it."""
        if dtype is None:
            return f"tinyvision.{_TYPE_NAMES.get(self.dtype, str(self.dtype))}Tensor"
        if isinstance(dtype, str):
            name = dtype.split(".")[-1].removesuffix("Tensor")
            found = [d for d, n in _TYPE_NAMES.items() if n == name]
            if not found:
                raise ValueError(f"type: unknown tensor type {dtype!r}; expected one of "
                                 f"{sorted(n + 'Tensor' for n in _TYPE_NAMES.values())}")
            dtype = found[0]
        return self.to(np.dtype(dtype))

    def clone(self) -> "Tensor":
        return F.clone(self)

    # ----------------------------------------------------------------- in place
    # PyTorch's rules. A leaf that requires grad changes only under no_grad (an optimizer
    # step): otherwise its .grad would belong to a value it no longer holds. Anywhere else
    # with grad mode on, the change is recorded: the op runs out of place on a copy of the
    # old value, which carries self's history, then self's array is overwritten and self
    # takes the new node. Every change bumps the version counter, so a node that saved the
    # old array refuses to run backward (Context.check_versions) instead of using new values.
    def _recording(self, *args: Any) -> bool:
        """Whether an in-place change of self with these arguments joins a graph."""
        return is_grad_enabled() and (
            self.requires_grad or any(isinstance(a, Tensor) and a.requires_grad for a in args))

    def _inplace(self, op: str, fn: Callable[..., "Tensor"], *args: Any) -> "Tensor":
        recording = self._recording(*args)
        if recording and self.grad_fn is None and self.requires_grad:
            raise RuntimeError(f"{op}: a leaf Variable that requires grad is being used in an "
                               "in-place operation. (Do it under tinyvision.no_grad().)")
        if not recording:
            with no_grad():
                return self._overwrite(op, fn(self, *args).data)
        check_history(op, self)
        old = Tensor(self.data.copy(), grad_fn=self.grad_fn, requires_grad=self.requires_grad)
        out = fn(old, *args)
        self._overwrite(op, out.data)
        self.grad_fn, self._requires_grad = out.grad_fn, out.requires_grad
        self._version_counter[1] += 1  # tensors sharing this memory now hold stale histories
        self._history_mark = self._version_counter[1]
        return self

    def _overwrite(self, op: str, values: Any) -> "Tensor":
        """Write ``values`` into self's memory (shape kept, dtype cast as PyTorch allows)."""
        values = values if compat.is_array(values) else np.asarray(values)
        if tuple(values.shape) != self.shape and np.broadcast_shapes(values.shape, self.shape) != self.shape:
            raise RuntimeError(f"{op}: output with shape {list(self.shape)} doesn't match the "
                               f"broadcast shape {list(np.broadcast_shapes(values.shape, self.shape))}")
        if values.dtype != self.dtype and not np.can_cast(values.dtype, self.dtype, "same_kind"):
            raise RuntimeError(f"{op}: result type {values.dtype} can't be cast to the desired "
                               f"output type {self.dtype}")
        self.data[...] = values
        self._bump_version()
        return self

    def _bump_version(self) -> None:
        """Count an in-place change of ``data`` (the optimizers call it after their updates)."""
        self._version_counter[0] += 1

    def _fill_with(self, op: str, values: Any) -> "Tensor":
        """Overwrite with values that do not depend on the old ones (fill_, normal_...):
        where(True, values, self), so a recorded graph sends self's history a zero gradient."""
        if not is_grad_enabled() or not (self.requires_grad or (isinstance(values, Tensor) and values.requires_grad)):
            return self._overwrite(op, values.data if isinstance(values, Tensor) else values)
        everywhere = Tensor(self._xp.ones(self.shape, dtype=bool))
        return self._inplace(op, lambda t, v: F.where(everywhere, F.cast(v, t.dtype) if isinstance(v, Tensor) else
                                                       self._xp.asarray(v, dtype=t.dtype), t), values)

    def __setitem__(self, index: Any, value: Any) -> None:
        if self._recording(value):
            self._inplace("__setitem__", lambda t, v: F.index_put(t, index, v), value)
            return
        # outside a graph, write just the indexed elements (not a whole copy, as index_put makes)
        self.data[F.unwrap_index(index)] = value.data if isinstance(value, Tensor) else value
        self._bump_version()

    def copy_(self, src: "Tensor | Any") -> "Tensor":
        if not isinstance(src, Tensor):
            src = Tensor(src if compat.is_array(src) else np.asarray(src))
        if src.device != self.device:
            src = src.to(self.device)
        return self._fill_with("copy_", src)

    def fill_(self, value: Any) -> "Tensor":
        return self._fill_with("fill_", value)

    def zero_(self) -> "Tensor":
        return self._fill_with("zero_", 0)

    def uniform_(self, a: float = 0.0, b: float = 1.0) -> "Tensor":
        """Fill with draws from U[a, b), from the generator that ``manual_seed`` seeds."""
        return self._fill_with("uniform_", a + (b - a) * random.rand_array(self.shape, self.device, self.dtype))

    def normal_(self, mean: float = 0.0, std: float = 1.0) -> "Tensor":
        return self._fill_with("normal_", mean + std * random.randn_array(self.shape, self.device, self.dtype))

    def bernoulli(self, p: float | None = None) -> "Tensor": return creation.bernoulli(self, p)
    def multinomial(self, num_samples: int, replacement: bool = False) -> "Tensor": return creation.multinomial(self, num_samples, replacement)

    def bernoulli_(self, p: float = 0.5) -> "Tensor":
        return self._fill_with("bernoulli_", random.rand_array(self.shape, self.device, np.float64) < p)

    def add_(self, other: Any, *, alpha: Any = 1) -> "Tensor": return self._inplace("add_", lambda t, o: F.add(t, o, alpha=alpha), other)
    def sub_(self, other: Any, *, alpha: Any = 1) -> "Tensor": return self._inplace("sub_", lambda t, o: F.sub(t, o, alpha=alpha), other)
    def mul_(self, other: Any) -> "Tensor": return self._inplace("mul_", F.mul, other)
    def div_(self, other: Any) -> "Tensor": return self._inplace("div_", F.div, other)
    def pow_(self, exponent: Any) -> "Tensor": return self._inplace("pow_", F.pow, exponent)
    def clamp_(self, min: Any = None, max: Any = None) -> "Tensor": return self._inplace("clamp_", F.clamp, min, max)
    clip_ = clamp_
    def abs_(self) -> "Tensor": return self._inplace("abs_", F.abs)
    def neg_(self) -> "Tensor": return self._inplace("neg_", F.neg)
    def exp_(self) -> "Tensor": return self._inplace("exp_", F.exp)
    def log_(self) -> "Tensor": return self._inplace("log_", F.log)
    def sqrt_(self) -> "Tensor": return self._inplace("sqrt_", F.sqrt)
    def sigmoid_(self) -> "Tensor": return self._inplace("sigmoid_", F.sigmoid)
    def tanh_(self) -> "Tensor": return self._inplace("tanh_", F.tanh)
    def relu_(self) -> "Tensor": return self._inplace("relu_", F.relu)
    def masked_fill_(self, mask: Any, value: Any) -> "Tensor": return self._inplace("masked_fill_", F.masked_fill, mask, value)
    def masked_scatter_(self, mask: Any, source: Any) -> "Tensor": return self._inplace("masked_scatter_", F.masked_scatter, mask, source)
    def scatter_(self, dim: int, index: Any, src: Any = None, *, value: Any = None, reduce: str | None = None) -> "Tensor":
        return self._inplace("scatter_", lambda t, s: F.scatter(t, dim, index, s, value=value, reduce=reduce), src)
    def scatter_add_(self, dim: int, index: Any, src: Any) -> "Tensor":
        return self._inplace("scatter_add_", lambda t, s: F.scatter_add(t, dim, index, s), src)
    def index_add_(self, dim: int, index: Any, source: Any, *, alpha: Any = 1) -> "Tensor":
        return self._inplace("index_add_", lambda t, s: F.index_add(t, dim, index, s, alpha=alpha), source)

    # ----------------------------------------------------------------- new tensors like this one
    def new_tensor(self, data: Any, dtype: Any = None, requires_grad: bool = False) -> "Tensor":
        return creation.tensor(data, dtype=dtype or self.dtype, device=self.device, requires_grad=requires_grad)

    def new_full(self, size: Sequence[int], fill_value: Any, dtype: Any = None, requires_grad: bool = False) -> "Tensor":
        return creation.full(size, fill_value, dtype=dtype or self.dtype, device=self.device, requires_grad=requires_grad)

    def new_zeros(self, *size: Any, dtype: Any = None, requires_grad: bool = False) -> "Tensor":
        return self.new_full(_shape_args(size), 0, dtype, requires_grad)

    def new_ones(self, *size: Any, dtype: Any = None, requires_grad: bool = False) -> "Tensor":
        return self.new_full(_shape_args(size), 1, dtype, requires_grad)

    def new_empty(self, *size: Any, dtype: Any = None, requires_grad: bool = False) -> "Tensor":
        return self.new_full(_shape_args(size), 0, dtype, requires_grad)

    def element_size(self) -> int:
        """Bytes per element."""
        return int(self.dtype.itemsize)

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)

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
    def add(self, other: Any, *, alpha: Any = 1) -> "Tensor": return F.add(self, other, alpha=alpha)
    def sub(self, other: Any, *, alpha: Any = 1) -> "Tensor": return F.sub(self, other, alpha=alpha)
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

    def square(self) -> "Tensor": return F.square(self)
    def erf(self) -> "Tensor": return F.erf(self)
    def atan2(self, other: Any) -> "Tensor": return F.atan2(self, other)
    arctan2 = atan2
    def lerp(self, end: Any, weight: Any) -> "Tensor": return F.lerp(self, end, weight)
    def floor(self) -> "Tensor": return F.floor(self)
    def ceil(self) -> "Tensor": return F.ceil(self)
    def round(self, *, decimals: int = 0) -> "Tensor": return F.round(self, decimals=decimals)
    def sign(self) -> "Tensor": return F.sign(self)
    def isnan(self) -> "Tensor": return F.isnan(self)
    def isinf(self) -> "Tensor": return F.isinf(self)
    def isfinite(self) -> "Tensor": return F.isfinite(self)
    def isclose(self, other: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> "Tensor":
        return F.isclose(self, other, rtol, atol, equal_nan)
    def allclose(self, other: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> bool:
        return F.allclose(self, other, rtol, atol, equal_nan)
    def eq(self, other: Any) -> "Tensor": return F.eq(self, other)
    def ne(self, other: Any) -> "Tensor": return F.ne(self, other)
    def lt(self, other: Any) -> "Tensor": return F.lt(self, other)
    def le(self, other: Any) -> "Tensor": return F.le(self, other)
    def gt(self, other: Any) -> "Tensor": return F.gt(self, other)
    def ge(self, other: Any) -> "Tensor": return F.ge(self, other)
    def logical_and(self, other: Any) -> "Tensor": return F.logical_and(self, other)
    def logical_or(self, other: Any) -> "Tensor": return F.logical_or(self, other)
    def logical_not(self) -> "Tensor": return F.logical_not(self)
    def all(self, dim: Any = None, keepdim: bool = False) -> "Tensor": return F.all(self, dim, keepdim)
    def any(self, dim: Any = None, keepdim: bool = False) -> "Tensor": return F.any(self, dim, keepdim)

    def sum(self, dim: Any = None, keepdim: bool = False) -> "Tensor": return F.sum(self, dim, keepdim)
    def mean(self, dim: Any = None, keepdim: bool = False) -> "Tensor": return F.mean(self, dim, keepdim)
    def var(self, dim: Any = None, unbiased: bool | None = None, keepdim: bool = False, *, correction: int | None = None) -> "Tensor":
        return F.var(self, dim, unbiased, keepdim, correction=correction)
    def std(self, dim: Any = None, unbiased: bool | None = None, keepdim: bool = False, *, correction: int | None = None) -> "Tensor":
        return F.std(self, dim, unbiased, keepdim, correction=correction)
    def max(self, dim: Any = None, keepdim: bool = False) -> Any: return F.max(self, dim, keepdim)
    def min(self, dim: Any = None, keepdim: bool = False) -> Any: return F.min(self, dim, keepdim)
    def amax(self, dim: Any = None, keepdim: bool = False) -> "Tensor": return F.amax(self, dim, keepdim)
    def amin(self, dim: Any = None, keepdim: bool = False) -> "Tensor": return F.amin(self, dim, keepdim)
    def argmax(self, dim: int | None = None, keepdim: bool = False) -> "Tensor": return F.argmax(self, dim, keepdim)
    def argmin(self, dim: int | None = None, keepdim: bool = False) -> "Tensor": return F.argmin(self, dim, keepdim)
    def logsumexp(self, dim: Any, keepdim: bool = False) -> "Tensor": return F.logsumexp(self, dim, keepdim)
    def prod(self, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> "Tensor": return F.prod(self, dim, keepdim, dtype=dtype)
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
    def t(self) -> "Tensor": return F.t(self)
    def view_as(self, other: "Tensor") -> "Tensor": return F.view_as(self, other)
    def narrow(self, dim: int, start: int, length: int) -> "Tensor": return F.narrow(self, dim, start, length)
    def unbind(self, dim: int = 0) -> tuple["Tensor", ...]: return F.unbind(self, dim)
    def repeat_interleave(self, repeats: Any = None, dim: int | None = None, *, output_size: int | None = None) -> "Tensor":
        return F.repeat_interleave(self, repeats, dim, output_size=output_size)
    def scatter(self, dim: int, index: Any, src: Any = None, *, value: Any = None, reduce: str | None = None) -> "Tensor":
        return F.scatter(self, dim, index, src, value=value, reduce=reduce)
    def scatter_add(self, dim: int, index: Any, src: "Tensor") -> "Tensor": return F.scatter_add(self, dim, index, src)
    def index_add(self, dim: int, index: Any, source: "Tensor", *, alpha: Any = 1) -> "Tensor": return F.index_add(self, dim, index, source, alpha=alpha)
    def masked_scatter(self, mask: Any, source: "Tensor") -> "Tensor": return F.masked_scatter(self, mask, source)

    # sorting and selection (functional/sorting.py)
    def sort(self, dim: int = -1, descending: bool = False, stable: bool = False) -> Any: return F.sort(self, dim, descending, stable)
    def argsort(self, dim: int = -1, descending: bool = False, stable: bool = False) -> "Tensor": return F.argsort(self, dim, descending, stable)
    def topk(self, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> Any: return F.topk(self, k, dim, largest, sorted)
    def kthvalue(self, k: int, dim: int = -1, keepdim: bool = False) -> Any: return F.kthvalue(self, k, dim, keepdim)
    def median(self, dim: int | None = None, keepdim: bool = False) -> Any: return F.median(self, dim, keepdim)
    def unique(self, sorted: bool = True, return_inverse: bool = False, return_counts: bool = False, dim: int | None = None) -> Any:
        return F.unique(self, sorted, return_inverse, return_counts, dim)
    def nonzero(self, *, as_tuple: bool = False) -> Any: return F.nonzero(self, as_tuple=as_tuple)

    # scans (functional/scan.py) and matrix products (functional/linalg.py)
    def cumsum(self, dim: int, *, dtype: Any = None) -> "Tensor": return F.cumsum(self, dim, dtype=dtype)
    def cumprod(self, dim: int, *, dtype: Any = None) -> "Tensor": return F.cumprod(self, dim, dtype=dtype)
    def diff(self, n: int = 1, dim: int = -1, prepend: Any = None, append: Any = None) -> "Tensor": return F.diff(self, n, dim, prepend, append)
    def mm(self, mat2: "Tensor") -> "Tensor": return F.mm(self, mat2)
    def bmm(self, mat2: "Tensor") -> "Tensor": return F.bmm(self, mat2)
    def addmm(self, mat1: "Tensor", mat2: "Tensor", *, beta: float = 1, alpha: float = 1) -> "Tensor": return F.addmm(self, mat1, mat2, beta=beta, alpha=alpha)
    def outer(self, vec2: "Tensor") -> "Tensor": return F.outer(self, vec2)
    def kron(self, other: "Tensor") -> "Tensor": return F.kron(self, other)
    def index_put(self, indices: Any, values: Any, accumulate: bool = False) -> "Tensor": return F.index_put(self, indices, values, accumulate)
    def index_put_(self, indices: Any, values: Any, accumulate: bool = False) -> "Tensor":
        return self._inplace("index_put_", lambda t, v: F.index_put(t, indices, v, accumulate), values)
    def tril(self, diagonal: int = 0) -> "Tensor": return F.tril(self, diagonal)
    def triu(self, diagonal: int = 0) -> "Tensor": return F.triu(self, diagonal)
    def diag(self, diagonal: int = 0) -> "Tensor": return F.diag(self, diagonal)


_TYPE_NAMES = {np.dtype(d): n for d, n in [(np.float32, "Float"), (np.float64, "Double"), (np.float16, "Half"),
                                           (np.int64, "Long"), (np.int32, "Int"), (np.int16, "Short"),
                                           (np.int8, "Char"), (np.uint8, "Byte"), (np.bool_, "Bool")]}


def _shape_args(args: tuple) -> tuple:
    """Accept both ``t.reshape(2, 3)`` and ``t.reshape((2, 3))``, as PyTorch does."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    return tuple(args)

