"""Reductions over ``dim`` (an int, a tuple, or None for all) with ``keepdim``, and softmax.

The backward of a reduction first puts the reduced axes back (size 1) so that the gradient
broadcasts against the input: that is ``expand_reduced``.
"""
from __future__ import annotations

import builtins
from collections import namedtuple
from typing import Any as Any

import numpy as np

from tinyvision.autograd.function import Context, Function
from tinyvision.autograd.tensor import Tensor
from tinyvision.functional import elementwise as E
from tinyvision.functional._util import check_floating, check_tensor, expand_reduced, normalize_dim, normalize_dims
from tinyvision.kernels.compat import array_module

Dim = Any  # int | tuple[int, ...] | None
values_indices = namedtuple("values_indices", ["values", "indices"])


class Sum(Function):
    @staticmethod
    def forward(ctx: Context, x, axes, keepdim):
        ctx.shape, ctx.axes, ctx.keepdim = x.shape, axes, keepdim
        return x.sum(axis=axes, keepdims=keepdim)

    @staticmethod
    def backward(ctx: Context, grad):  # every summed element gets the same gradient
        g = expand_reduced(grad, ctx.shape, ctx.axes, ctx.keepdim)
        return array_module(g).broadcast_to(g, ctx.shape), None, None


class Var(Function):
    """Variance with Bessel's ``correction``: sum((x - mean)^2) / (n - correction), or its
    square root, the standard deviation, when ``take_sqrt``."""

    @staticmethod
    def forward(ctx: Context, x, axes, keepdim, correction, take_sqrt):
        xp = array_module(x)
        n = int(np.prod([x.shape[a] for a in axes])) if axes else 1
        centred = x - x.mean(axis=axes, keepdims=True)
        # PyTorch divides by max(0, n - correction): 0 gives inf or nan (with a warning)
        denom = builtins.max(0, n - correction)
        y = (centred * centred).sum(axis=axes, keepdims=True) / denom
        if take_sqrt:
            y = xp.sqrt(y)
        ctx.save_for_backward(centred, y)
        ctx.axes, ctx.keepdim, ctx.denom, ctx.take_sqrt = axes, keepdim, denom, take_sqrt
        return y if keepdim else y.squeeze(axis=axes)

    @staticmethod
    def backward(ctx: Context, grad):
        """d var / dx_i = 2 (x_i - mean) / (n - correction);  d std / dx_i = that / (2 std),
        taken as 0 where std = 0 (all values equal), as PyTorch does."""
        centred, y = ctx.saved_tensors
        xp = array_module(y)
        g = expand_reduced(grad, centred.shape, ctx.axes, ctx.keepdim)
        if ctx.take_sqrt:
            return g * centred / (xp.where(y == 0, 1, y) * ctx.denom) * (y != 0), None, None, None, None
        return g * centred * 2 / ctx.denom, None, None, None, None  # array / 0 is inf/nan, not an error


class Extreme(Function):
    """amax/amin: the gradient is shared evenly among the elements equal to the extreme."""

    @staticmethod
    def forward(ctx: Context, x, axes, keepdim, largest):
        y = x.max(axis=axes, keepdims=True) if largest else x.min(axis=axes, keepdims=True)
        ctx.save_for_backward(x == y)
        ctx.axes, ctx.keepdim = axes, keepdim
        return y if keepdim else y.squeeze(axis=axes)

    @staticmethod
    def backward(ctx: Context, grad):
        (hit,) = ctx.saved_tensors
        g = expand_reduced(grad, hit.shape, ctx.axes, ctx.keepdim)
        count = hit.sum(axis=ctx.axes, keepdims=True)
        return g * hit / count, None, None, None


def _max_shift(x, axes: tuple[int, ...]):
    """The max over ``axes`` (kept as size 1), to subtract before exp() so that exp(x - m) <= 1
    never overflows. 0 where the max is not finite (an all -inf row stays -inf, not NaN) and
    over an empty dim (where max() has no value but the sum of exps is just 0)."""
    xp = array_module(x)
    if builtins.any(x.shape[a] == 0 for a in axes):
        return xp.zeros([1 if a in axes else n for a, n in enumerate(x.shape)], dtype=x.dtype)
    m = x.max(axis=axes, keepdims=True)
    return xp.where(xp.isfinite(m), m, 0)


class LogSumExp(Function):
    @staticmethod
    def forward(ctx: Context, x, axes, keepdim):
        xp = array_module(x)
        m = _max_shift(x, axes)
        y = m + xp.log(xp.exp(x - m).sum(axis=axes, keepdims=True))  # -inf over an empty dim
        ctx.save_for_backward(x, y)
        ctx.axes, ctx.keepdim = axes, keepdim
        return y if keepdim else y.squeeze(axis=axes)

    @staticmethod
    def backward(ctx: Context, grad):  # d lse / dx = softmax(x)
        x, y = ctx.saved_tensors
        g = expand_reduced(grad, x.shape, ctx.axes, ctx.keepdim)
        return g * array_module(x).exp(x - y), None, None


class Prod(Function):
    @staticmethod
    def forward(ctx: Context, x, axes, keepdim):
        ctx.save_for_backward(x)
        ctx.axes, ctx.keepdim = axes, keepdim
        return x.prod(axis=axes, keepdims=keepdim)

    @staticmethod
    def backward(ctx: Context, grad):
        """d prod / dx_i = product of all the others. Computed as (product of those before i)
        x (product of those after i), so zeros in x need no division and no special case."""
        (x,) = ctx.saved_tensors
        xp = array_module(x)
        axes, rest = ctx.axes, [a for a in range(x.ndim) if a not in ctx.axes]
        n = int(np.prod([x.shape[a] for a in axes]))  # not -1: ambiguous when x is empty
        flat = x.transpose(rest + list(axes)).reshape([x.shape[a] for a in rest] + [n])
        ones = xp.ones(flat.shape[:-1] + (1,), dtype=x.dtype)
        # before[i] = x_0 ... x_(i-1) and after[i] = x_(i+1) ... x_(n-1), both 1 when empty
        before = xp.cumprod(xp.concatenate([ones, flat], axis=-1), axis=-1)[..., :-1]
        after = xp.flip(xp.cumprod(xp.flip(xp.concatenate([flat, ones], axis=-1), -1), axis=-1), -1)[..., 1:]
        others = (before * after).reshape([x.shape[a] for a in rest + list(axes)])
        others = others.transpose(np.argsort(rest + list(axes)))
        g = expand_reduced(grad, x.shape, axes, ctx.keepdim)
        return g * others, None, None


class Norm(Function):
    """Vector p-norm ||x||_p = (sum |x|^p)^(1/p) for a finite p; p = 0 counts the nonzero
    entries (a step function: its gradient is 0 everywhere, as PyTorch's)."""

    @staticmethod
    def forward(ctx: Context, x, p, axes, keepdim):
        xp = array_module(x)
        if p == 0:
            y = (x != 0).sum(axis=axes, keepdims=True).astype(x.dtype)
        else:
            y = (xp.abs(x) ** p).sum(axis=axes, keepdims=True) ** (1 / p)
        ctx.save_for_backward(x, y)
        ctx.p, ctx.axes, ctx.keepdim = p, axes, keepdim
        return y if keepdim else y.squeeze(axis=axes)

    @staticmethod
    def backward(ctx: Context, grad):
        """d||x||/dx_i = sign(x_i) (|x_i| / ||x||)^(p-1)  (x / ||x|| for p = 2), written with
        the ratio so that neither power overflows; taken as 0 where ||x|| = 0, as PyTorch."""
        x, y = ctx.saved_tensors
        xp = array_module(x)
        if ctx.p == 0:
            return xp.zeros_like(x), None, None, None
        g = expand_reduced(grad, x.shape, ctx.axes, ctx.keepdim)
        ratio = xp.abs(x) / xp.where(y == 0, 1, y)
        return g * xp.sign(x) * ratio ** (ctx.p - 1) * (y != 0), None, None, None


class Softmax(Function):
    @staticmethod
    def forward(ctx: Context, x, dim):
        xp = array_module(x)
        e = xp.exp(x - _max_shift(x, (dim,)))
        y = e / e.sum(axis=dim, keepdims=True)
        ctx.save_for_backward(y)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx: Context, grad):
        """The Jacobian is diag(y) - y y^T, so dL/dx = y * (g - sum(g * y))."""
        (y,) = ctx.saved_tensors
        return y * (grad - (grad * y).sum(axis=ctx.dim, keepdims=True)), None


class LogSoftmax(Function):
    @staticmethod
    def forward(ctx: Context, x, dim):
        xp = array_module(x)
        shifted = x - _max_shift(x, (dim,))
        y = shifted - xp.log(xp.exp(shifted).sum(axis=dim, keepdims=True))  # x - logsumexp(x)
        ctx.save_for_backward(y)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx: Context, grad):  # dL/dx = g - softmax(x) * sum(g)
        (y,) = ctx.saved_tensors
        return grad - array_module(y).exp(y) * grad.sum(axis=ctx.dim, keepdims=True), None


# ------------------------------------------------------------------ public functions
def sum(input: Tensor, dim: Dim = None, keepdim: bool = False) -> Tensor:
    """Sum over ``dim`` (all axes when None). Gradient: broadcast back to the input shape."""
    return Sum.apply(input, normalize_dims(dim, input.ndim, "sum"), keepdim)


def mean(input: Tensor, dim: Dim = None, keepdim: bool = False) -> Tensor:
    check_floating("mean", "input", input)  # PyTorch refuses too: the mean of ints is not an int
    axes = normalize_dims(dim, input.ndim, "mean")
    n = int(np.prod([input.shape[a] for a in axes])) if axes else 1
    return Sum.apply(input, axes, keepdim) / n


def _correction(op: str, dim: Any, unbiased: Any, correction: Any) -> tuple[Any, int]:
    """PyTorch's three spellings: var(x, dim, unbiased, keepdim), var(x, unbiased) and
    var(x, dim, correction=c); unbiased=True is correction 1, False is 0."""
    if isinstance(dim, bool):  # var(x, False): the bool is unbiased
        dim, unbiased = None, dim
    if unbiased is not None and correction is not None:
        raise TypeError(f"{op}: give unbiased or correction, not both")
    if unbiased is not None:
        return dim, int(bool(unbiased))
    return dim, 1 if correction is None else correction


def var(input: Tensor, dim: Dim = None, unbiased: bool | None = None, keepdim: bool = False, *,
        correction: int | None = None) -> Tensor:
    """Variance over ``dim``: sum((x - mean)^2) / (n - correction); correction 1 (the
    default, as in PyTorch; unbiased=True) divides by n - 1, 0 (unbiased=False) by n."""
    check_floating("var", "input", input)
    dim, c = _correction("var", dim, unbiased, correction)
    return Var.apply(input, normalize_dims(dim, input.ndim, "var"), keepdim, c, False)


def std(input: Tensor, dim: Dim = None, unbiased: bool | None = None, keepdim: bool = False, *,
        correction: int | None = None) -> Tensor:
    """Standard deviation, sqrt(var) (same arguments); its gradient is 0 where it is 0."""
    check_floating("std", "input", input)
    dim, c = _correction("std", dim, unbiased, correction)
    return Var.apply(input, normalize_dims(dim, input.ndim, "std"), keepdim, c, True)


def _check_nonempty(op: str, shape: tuple[int, ...], axes: tuple[int, ...]) -> None:
    """The max of nothing does not exist: refuse an empty reduced dim, as PyTorch does."""
    for a in axes:
        if shape[a] == 0:
            raise IndexError(f"{op}: cannot reduce over dim {a} of size 0 (input shape {shape})")


def _extreme(op: str, input: Tensor, dim: Dim, keepdim: bool, largest: bool) -> Tensor:
    axes = normalize_dims(dim, input.ndim, op)
    _check_nonempty(op, input.shape, axes)
    return Extreme.apply(input, axes, keepdim, largest)


def amax(input: Tensor, dim: Dim = None, keepdim: bool = False) -> Tensor:
    """Largest value over ``dim``; the gradient is shared evenly among tied maxima."""
    return _extreme("amax", input, dim, keepdim, True)


def amin(input: Tensor, dim: Dim = None, keepdim: bool = False) -> Tensor:
    return _extreme("amin", input, dim, keepdim, False)


def _max_or_min(op: str, input: Tensor, dim: Any, keepdim: bool, largest: bool) -> Any:
    """PyTorch's three forms: max(x) -> value; max(x, dim) -> (values, indices);
    max(x, other_tensor) -> elementwise maximum."""
    if isinstance(dim, Tensor):
        return E.maximum(input, dim) if largest else E.minimum(input, dim)
    if dim is None:  # the gradient is shared evenly among ties, as PyTorch's max()
        return _extreme(op, input, None, False, largest)
    if not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{op}: dim must be an int (or a Tensor for the elementwise form), got {dim!r}")
    from tinyvision.functional.indexing import gather

    idx = (argmax if largest else argmin)(input, dim, keepdim=True)
    values = gather(input, dim, idx)  # the gradient goes to the chosen index only, as PyTorch
    if not keepdim:
        values, idx = values.squeeze(dim), idx.squeeze(dim)
    return values_indices(values, idx)


def max(input: Tensor, dim: Any = None, keepdim: bool = False) -> Any:
    return _max_or_min("max", input, dim, keepdim, True)


def min(input: Tensor, dim: Any = None, keepdim: bool = False) -> Any:
    return _max_or_min("min", input, dim, keepdim, False)


def argmax(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """Index of the largest value (first one on ties); no gradient. int64."""
    return _arg(input, dim, keepdim, "argmax")


def argmin(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    return _arg(input, dim, keepdim, "argmin")


def _arg(input: Tensor, dim: int | None, keepdim: bool, op: str) -> Tensor:
    x = input.data
    if dim is None:
        _check_nonempty(op, (x.size,), (0,))
        out = getattr(x.reshape(-1), op)()
        return Tensor(out.reshape((1,) * x.ndim) if keepdim else out).long()
    axis = normalize_dim(dim, x.ndim, op)
    _check_nonempty(op, x.shape, (axis,) if x.ndim else ())
    return Tensor(getattr(x, op)(axis=axis, keepdims=keepdim).astype(np.int64))


def _logical(op: str, input: Tensor, dim: Dim, keepdim: bool) -> Tensor:
    x = input.data
    axes = normalize_dims(dim, x.ndim, op)
    return Tensor(getattr(x != 0, op)(axis=axes, keepdims=keepdim))


def all(input: Tensor, dim: Dim = None, keepdim: bool = False) -> Tensor:
    """True where every element over ``dim`` is nonzero (bool, no gradient)."""
    return _logical("all", input, dim, keepdim)


def any(input: Tensor, dim: Dim = None, keepdim: bool = False) -> Tensor:
    """True where some element over ``dim`` is nonzero (bool, no gradient)."""
    return _logical("any", input, dim, keepdim)


def logsumexp(input: Tensor, dim: Dim, keepdim: bool = False) -> Tensor:
    """log(sum(exp(x))) computed stably; its gradient is softmax(x)."""
    return LogSumExp.apply(input, normalize_dims(dim, input.ndim, "logsumexp"), keepdim)


def prod(input: Tensor, dim: Dim = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    """Product over ``dim``; ``dtype`` casts the input first (e.g. ints to float64), as in
    PyTorch. Gradient: the product of the other elements, exact with zeros."""
    if dtype is not None:
        input = E.cast(input, dtype)
    return Prod.apply(input, normalize_dims(dim, input.ndim, "prod"), keepdim)


def norm(input: Tensor, p: Any = 2, dim: Dim = None, keepdim: bool = False) -> Tensor:
    """Vector p-norm over ``dim`` (all axes when None): p = 2 or 'fro' (the default), 1, 3, any
    finite p, 0 (the count of nonzeros), inf (max |x|) or -inf (min |x|). The gradient is 0
    where the norm is 0."""
    check_floating("norm", "input", input)
    axes = normalize_dims(dim, input.ndim, "norm")
    if p == "fro":
        p = 2
    if isinstance(p, str):
        raise ValueError(f"norm: p must be a number, 'fro', inf or -inf, got {p!r}")
    if p == float("inf"):
        return amax(E.abs(input), axes, keepdim)
    if p == float("-inf"):
        return amin(E.abs(input), axes, keepdim)
    return Norm.apply(input, float(p), axes, keepdim)


def _softmax_args(op: str, input: Tensor, dim: int | None, dtype: Any) -> tuple[Tensor, int]:
    """The input (cast to ``dtype`` first when given, as PyTorch) and a checked dim.

    dim=None is PyTorch's deprecated implicit choice, kept for old code: dim 0 for 0-, 1- and
    3-D input (a vector; an unbatched (C, H, W) map), else dim 1 (the channels of (N, C, ...)),
    with the same warning."""
    check_tensor(op, "input", input)
    if dtype is not None:
        input = E.cast(input, dtype)
    check_floating(op, "input", input, " (or pass dtype=)")
    if dim is None:
        import warnings
        dim = 0 if input.ndim in (0, 1, 3) else 1
        warnings.warn(f"{op}: implicit dimension choice (dim=None) is deprecated; chose dim={dim}. "
                      "Pass dim explicitly.", UserWarning, stacklevel=3)
    return input, normalize_dim(dim, input.ndim, op)


def _along(fn: type, input: Tensor, dim: int) -> Tensor:
    if input.ndim == 0:  # a scalar is a distribution over one element, as in torch
        return fn.apply(input.reshape(1), 0).reshape(())
    return fn.apply(input, dim)


def softmax(input: Tensor, dim: int | None = None, dtype: Any = None) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim``, shifted by the max for stability."""
    return _along(Softmax, *_softmax_args("softmax", input, dim, dtype))


def log_softmax(input: Tensor, dim: int | None = None, dtype: Any = None) -> Tensor:
    """x - logsumexp(x) along ``dim``: stable where log(softmax(x)) underflows to -inf."""
    return _along(LogSoftmax, *_softmax_args("log_softmax", input, dim, dtype))
