"""Scans along one dim: cumsum, cumprod, and diff (built on slicing, so it needs no backward
of its own).

A scan's output element i depends on inputs 0..i, so its backward is a scan the other way:
the gradient of input k collects from outputs k..n-1.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tinyvision.autograd.function import Context, Function
from tinyvision.autograd.tensor import Tensor
from tinyvision.functional import elementwise as E
from tinyvision.functional._util import normalize_dim
from tinyvision.functional.shape import cat
from tinyvision.kernels.compat import array_module


def _reverse_cumsum(g, axis: int):
    """sum_{i >= k} g_i for every k: a cumsum run from the end."""
    xp = array_module(g)
    return xp.flip(xp.cumsum(xp.flip(g, axis), axis=axis), axis)


class CumSum(Function):
    @staticmethod
    def forward(ctx: Context, x, axis):
        ctx.axis = axis
        return array_module(x).cumsum(x, axis=axis)

    @staticmethod
    def backward(ctx: Context, grad):  # y_i = sum_{k<=i} x_k  =>  dL/dx_k = sum_{i>=k} g_i
        return _reverse_cumsum(grad, ctx.axis), None


class CumProd(Function):
    @staticmethod
    def forward(ctx: Context, x, axis):
        ctx.axis = axis
        ctx.save_for_backward(x)
        return array_module(x).cumprod(x, axis=axis)

    @staticmethod
    def backward(ctx: Context, grad):
        """y_i = x_0 ... x_i, so dL/dx_k = sum_{i>=k} g_i prod_{j<=i, j!=k} x_j
                                         = (x_0 ... x_(k-1)) * r_k,
        with r_k = sum_{i>=k} g_i x_(k+1) ... x_i, which obeys r_k = g_k + x_(k+1) r_(k+1).
        No division by x_k anywhere, so zeros in x give the exact gradient (dividing y by x,
        the shortcut, gives 0/0 there)."""
        (x,) = ctx.saved_tensors
        xp = array_module(x)
        xs, gs = xp.moveaxis(x, ctx.axis, 0), xp.moveaxis(grad, ctx.axis, 0)
        n = xs.shape[0]
        before = xp.cumprod(xp.concatenate([xp.ones_like(xs[:1]), xs[:-1]]), axis=0) if n else xs
        r = xp.empty_like(gs)
        for k in range(n - 1, -1, -1):  # the recurrence runs backwards, one slice at a time
            r[k] = gs[k] if k == n - 1 else gs[k] + xs[k + 1] * r[k + 1]
        return xp.moveaxis(before * r, 0, ctx.axis), None


def _scan(op: str, fn: type[Function], input: Tensor, dim: int, dtype: Any) -> Tensor:
    if dtype is not None:
        input = E.cast(input, dtype)
    elif input.dtype.kind in "biu":  # PyTorch sums integers and bools as int64
        input = E.cast(input, np.int64)
    if input.ndim == 0:  # a 0-d tensor accepts dim 0 or -1 and is its own scan
        normalize_dim(dim, 0, op)
        return E.clone(input)
    return fn.apply(input, normalize_dim(dim, input.ndim, op))


def cumsum(input: Tensor, dim: int, *, dtype: Any = None) -> Tensor:
    """Running sum along ``dim``: out_i = x_0 + ... + x_i (same shape as input)."""
    return _scan("cumsum", CumSum, input, dim, dtype)


def cumprod(input: Tensor, dim: int, *, dtype: Any = None) -> Tensor:
    """Running product along ``dim``: out_i = x_0 * ... * x_i; exact gradient with zeros."""
    return _scan("cumprod", CumProd, input, dim, dtype)


def diff(input: Tensor, n: int = 1, dim: int = -1, prepend: Tensor | None = None,
         append: Tensor | None = None) -> Tensor:
    """The n-th forward difference along ``dim``: out_i = x_(i+1) - x_i, applied n times, after
    joining ``prepend`` and ``append`` (same dims as input, any size along ``dim``) at the ends.
    Built on slicing and subtraction, so the gradient comes from theirs."""
    if input.ndim == 0:
        raise RuntimeError("diff: expects input to be at least one-dimensional, got a 0-d tensor")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"diff: order n must be a non-negative int, got {n!r}")
    d = normalize_dim(dim, input.ndim, "diff")
    for name, extra in (("prepend", prepend), ("append", append)):
        if extra is not None and (extra.ndim != input.ndim or any(
                a != b for k, (a, b) in enumerate(zip(extra.shape, input.shape)) if k != d)):
            raise ValueError(f"diff: {name} of shape {extra.shape} must match input of shape "
                             f"{input.shape} in every dim but dim {dim}")
    if n == 0:  # PyTorch returns the input itself, without prepend and append
        return input
    x = cat([t for t in (prepend, input, append) if t is not None], d)
    lead = (slice(None),) * d
    for _ in range(n):
        if x.shape[d] == 0:
            break
        x = x[lead + (slice(1, None),)] - x[lead + (slice(None, -1),)]
    return x
