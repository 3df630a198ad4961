"""Layer normalisation on the CPU with Numba: the same functions and signatures as
``reference/normalization.py``.

One parallel loop over rows does, for each row while it sits in L1: the mean, the variance
(two passes, accumulated in float64 whatever the input dtype), and the scaled, shifted output.
The NumPy expressions make about eight full passes over memory with as many temporaries; for
the (tokens, 192) rows of a ViT-Tiny that was the cost, not the arithmetic.

The backward computes dL/dx row by row the same way. dL/dw and dL/db are sums over rows, so
threads would race on them: each thread sums its own block of rows into its own float64 row of
``partial`` (threads x C), and the blocks are added at the end.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from tinyvision.kernels.cpu import threading as _threading  # noqa: F401  (one Numba/BLAS thread policy)

__all__ = ["layer_norm_forward", "layer_norm_backward"]


@njit(parallel=True, cache=True)
def _forward(x, w, b, eps, has_w, has_b, y, mean, rstd):
    R, C = x.shape
    for r in prange(R):
        s = 0.0
        for c in range(C):
            s += x[r, c]
        m = s / C
        v = 0.0
        for c in range(C):
            d = x[r, c] - m
            v += d * d
        rs = 1.0 / np.sqrt(v / C + eps)
        mean[r], rstd[r] = m, rs
        for c in range(C):
            h = (x[r, c] - m) * rs
            if has_w:
                h *= w[c]
            if has_b:
                h += b[c]
            y[r, c] = h


@njit(parallel=True, cache=True)
def _backward(grad, x, w, has_w, mean, rstd, dx, partial_w, partial_b):
    R, C = x.shape
    blocks = partial_w.shape[0]
    step = (R + blocks - 1) // blocks
    for t in prange(blocks):
        for r in range(t * step, min(R, (t + 1) * step)):
            m, rs = mean[r], rstd[r]
            sg = 0.0   # <g>       with g = dL/dy * w
            sgh = 0.0  # <g x_hat>
            for c in range(C):
                h = (x[r, c] - m) * rs
                g = grad[r, c] * w[c] if has_w else grad[r, c]
                sg += g
                sgh += g * h
                partial_w[t, c] += grad[r, c] * h
                partial_b[t, c] += grad[r, c]
            sg /= C
            sgh /= C
            for c in range(C):
                h = (x[r, c] - m) * rs
                g = grad[r, c] * w[c] if has_w else grad[r, c]
                dx[r, c] = rs * (g - sg - h * sgh)


def _affine(a: np.ndarray | None, like: np.ndarray) -> tuple[np.ndarray, bool]:
    """Numba needs an array either way: a 1-element stand-in when there is no weight/bias."""
    return (np.ones(1, like.dtype), False) if a is None else (np.ascontiguousarray(a, like.dtype), True)


def layer_norm_forward(x: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None,
                       eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x (R, C) -> (y (R, C), mean (R,), rstd (R,)); mean and rstd are kept for the backward."""
    x = np.ascontiguousarray(x)
    (w, has_w), (b, has_b) = _affine(weight, x), _affine(bias, x)
    y = np.empty_like(x)
    mean, rstd = np.empty(x.shape[0], np.float64), np.empty(x.shape[0], np.float64)
    _forward(x, w, b, float(eps), has_w, has_b, y, mean, rstd)
    return y, mean, rstd


def layer_norm_backward(grad: np.ndarray, x: np.ndarray, weight: np.ndarray | None, mean: np.ndarray,
                        rstd: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dL/dy (R, C) -> (dL/dx (R, C), dL/dw (C,), dL/db (C,)); the caller keeps what it needs."""
    x, grad = np.ascontiguousarray(x), np.ascontiguousarray(grad, x.dtype)
    w, has_w = _affine(weight, x)
    blocks = max(1, min(numba.get_num_threads(), x.shape[0]))
    partial_w = np.zeros((blocks, x.shape[1]), np.float64)
    partial_b = np.zeros((blocks, x.shape[1]), np.float64)
    dx = np.empty_like(x)
    _backward(grad, x, w, has_w, np.asarray(mean, np.float64), np.asarray(rstd, np.float64), dx, partial_w, partial_b)
    return dx, partial_w.sum(0).astype(x.dtype), partial_b.sum(0).astype(x.dtype)
