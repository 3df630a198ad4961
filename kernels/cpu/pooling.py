"""Pooling on the CPU with Numba: the same functions and signatures as ``reference/pooling.py``.

What makes these loops fast (numbers in docs/pooling.md):

* parallel over planes (``prange``): each (n, c) plane is pooled on its own, so the backward's
  scatter-add never races;
* max-pool without branches on the data: ``m = maximum(m, v)`` and an arithmetic argmax update
  (``_take``). On random data a branch on ``v > m`` is mispredicted half the time, and that
  cost ~8x on 2x2 windows;
* fast paths for the two common shapes, 2x2 stride 2 (LeNet, VGG) and 3x3 stride 2 padding 1
  (ResNet's stem): windows that lie inside the plane take ``_max_inside`` with a literal
  kernel size, fully unrolled, with no bounds logic; only border windows clip their taps;
* average pool: one output row at a time, and per kernel tap (i, j) one pass over the row,
  over the range of ``ow`` whose tap lands in the input (computed up front, no test inside).

Kernels only touch in-range memory for the arguments that ``tinyvision.functional.pooling``
accepts; ``tests/test_pooling.py`` runs them under ``NUMBA_BOUNDSCHECK=1`` to prove it.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from numba import njit, prange

from tinyvision.kernels.cpu import threading as _threading  # noqa: F401  (one Numba/BLAS thread policy)
from tinyvision.kernels.reference.pooling import Pair, adaptive_bins, avg_pool_divisor

# The ladder: what every rung of this op defines with one signature and kernels/dispatch.py
# reaches by name (tests/test_kernels_ladder.py checks that the rungs agree).
__all__ = ["max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward",
           "adaptive_avg_pool2d_forward", "adaptive_avg_pool2d_backward",
           "adaptive_max_pool2d_forward"]

# (kernel_size, stride, padding) with specialised kernels; dilation must be (1, 1)
_K2S2 = ((2, 2), (2, 2), (0, 0))
_K3S2P1 = ((3, 3), (2, 2), (1, 1))


@njit(inline="always")
def _tap_range(off: int, stride: int, n_out: int, n_in: int) -> tuple[int, int]:
    """The outputs o in [lo, hi) whose tap o * stride + off lies in [0, n_in)."""
    lo = max(0, (stride - 1 - off) // stride)  # ceil(-off / stride)
    hi = min(n_out, (n_in - 1 - off) // stride + 1)
    return lo, hi


# --------------------------------------------------------------------------- max pool

@njit(inline="always")
def _take(v, m, a, hw):
    """One max-pool step without a branch: keep (m, a) unless v beats m.

    Strictly greater keeps the first maximum in window order; a NaN always wins (as torch).
    The index update a + (hw - a) * t is arithmetic, so random data costs no mispredictions.
    """
    t = np.int64(v > m) | np.int64(v != v)
    return np.maximum(m, v), a + (hw - a) * t


@njit(inline="always")
def _taps(o: int, stride: int, pad: int, dil: int, k: int, n: int) -> tuple[int, int, int]:
    """Output o's window starts at pixel o*stride - pad; taps t in [lo, hi) land in [0, n)."""
    start = o * stride - pad
    lo = max(0, (dil - 1 - start) // dil)  # ceil(-start / dil)
    hi = min(k, (n - 1 - start) // dil + 1)
    return start, lo, hi


@njit(inline="always")
def _max_window(x, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw):
    """Max and argmax of one window, skipping taps in the padding: (-inf, -1) if all are."""
    H, W = x.shape
    h0, ilo, ihi = _taps(oh, sh, ph, dh, kh, H)
    w0, jlo, jhi = _taps(ow, sw, pw, dw, kw, W)
    m, a = -np.inf, -1
    for i in range(ilo, ihi):
        h = h0 + i * dh
        for j in range(jlo, jhi):
            w = w0 + j * dw
            m, a = _take(x[h, w], m, a, h * W + w)
    return m, a


@njit(inline="always")
def _max_inside(x, h0, w0, k):
    """A k x k window (stride-free, undilated) known to lie inside the plane: fixed trip
    counts, no bounds logic, fully unrolled for a literal k."""
    W = x.shape[1]
    m, a = x[h0, w0], h0 * W + w0
    for i in range(k):
        row = x[h0 + i]
        for j in range(k):
            m, a = _take(row[w0 + j], m, a, (h0 + i) * W + w0 + j)
    return m, a


@njit(parallel=True, cache=True)
def _max_generic(x, y, idx, kh, kw, sh, sw, ph, pw, dh, dw):
    for p in prange(x.shape[0]):
        for oh in range(y.shape[1]):
            for ow in range(y.shape[2]):
                y[p, oh, ow], idx[p, oh, ow] = _max_window(x[p], oh, ow, kh, kw, sh, sw, ph, pw, dh, dw)


@njit(parallel=True, cache=True)
def _max_k2s2(x, y, idx):
    """2x2 stride 2, no padding, every window inside (the caller checks 2*OH <= H, 2*OW <= W)."""
    for p in prange(x.shape[0]):
        for oh in range(y.shape[1]):
            for ow in range(y.shape[2]):
                y[p, oh, ow], idx[p, oh, ow] = _max_inside(x[p], 2 * oh, 2 * ow, 2)


@njit(parallel=True, cache=True)
def _max_k3s2p1(x, y, idx):
    """3x3 stride 2 padding 1: window (oh, ow) starts at (2oh - 1, 2ow - 1). The interior
    outputs 1 <= oh < H // 2 take the unrolled path; the border outputs clip their taps."""
    H, W = x.shape[1:]
    OH, OW = y.shape[1:]
    oh_end, ow_end = min(OH, H // 2), min(OW, W // 2)
    for p in prange(x.shape[0]):
        for oh in range(OH):
            border_row = oh == 0 or oh >= oh_end
            for ow in range(OW):
                if border_row or ow == 0 or ow >= ow_end:
                    y[p, oh, ow], idx[p, oh, ow] = _max_window(x[p], oh, ow, 3, 3, 2, 2, 1, 1, 1, 1)
                else:
                    y[p, oh, ow], idx[p, oh, ow] = _max_inside(x[p], 2 * oh - 1, 2 * ow - 1, 3)


@njit(parallel=True, cache=True)
def _scatter_planes(g, idx, dx):
    """dx[p, idx[p, o]] += g[p, o]; index -1 (a window with no input pixel) is skipped."""
    for p in prange(g.shape[0]):
        dx[p, :] = 0
        for o in range(g.shape[1]):
            a = idx[p, o]
            if a >= 0:
                dx[p, a] += g[p, o]


def _as_planes(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x).reshape((-1,) + x.shape[-2:])


def max_pool2d_forward(x: np.ndarray, kernel_size: Pair, stride: Pair, padding: Pair,
                       dilation: Pair, output_size: Pair) -> tuple[np.ndarray, np.ndarray]:
    """See reference.pooling.max_pool2d_forward. x: (..., H, W) -> y, indices: (..., OH, OW)."""
    xs = _as_planes(x)
    y = np.empty((xs.shape[0],) + tuple(output_size), dtype=x.dtype)
    idx = np.empty(y.shape, dtype=np.int64)
    config = (tuple(kernel_size), tuple(stride), tuple(padding))
    inside = 2 * output_size[0] <= x.shape[-2] and 2 * output_size[1] <= x.shape[-1]
    if tuple(dilation) == (1, 1) and config == _K2S2 and inside:
        _max_k2s2(xs, y, idx)
    elif tuple(dilation) == (1, 1) and config == _K3S2P1:
        _max_k3s2p1(xs, y, idx)
    else:
        _max_generic(xs, y, idx, *kernel_size, *stride, *padding, *dilation)
    shape = x.shape[:-2] + tuple(output_size)
    return y.reshape(shape), idx.reshape(shape)


def max_pool2d_backward(grad: np.ndarray, indices: np.ndarray, input_shape: Sequence[int]) -> np.ndarray:
    """See reference.pooling.max_pool2d_backward (also adaptive max-pool's backward)."""
    n_out = grad.shape[-2] * grad.shape[-1]
    g = np.ascontiguousarray(grad).reshape(-1, n_out)
    dx = np.empty((g.shape[0], input_shape[-2] * input_shape[-1]), dtype=grad.dtype)
    _scatter_planes(g, np.ascontiguousarray(indices).reshape(-1, n_out), dx)
    return dx.reshape(tuple(input_shape))


# --------------------------------------------------------------------------- average pool

@njit(inline="always")
def _avg_plane(x, y, div, kh, kw, sh, sw, ph, pw):
    H, W = x.shape
    OH, OW = y.shape
    for oh in range(OH):
        acc = y[oh]
        acc[:] = 0
        for i in range(kh):
            h = oh * sh - ph + i
            if h < 0 or h >= H:
                continue
            row = x[h]
            for j in range(kw):
                lo, hi = _tap_range(j - pw, sw, OW, W)
                for ow in range(lo, hi):
                    acc[ow] += row[ow * sw + j - pw]
        for ow in range(OW):
            acc[ow] /= div[oh, ow]


@njit(inline="always")
def _avg_plane_backward(gd, dx, kh, kw, sh, sw, ph, pw):
    """dx[h, w] += gd[oh, ow] for every window (oh, ow) holding (h, w); gd = grad / divisor."""
    H, W = dx.shape
    OH, OW = gd.shape
    dx[:, :] = 0
    for oh in range(OH):
        for i in range(kh):
            h = oh * sh - ph + i
            if h < 0 or h >= H:
                continue
            row = dx[h]
            for j in range(kw):
                lo, hi = _tap_range(j - pw, sw, OW, W)
                for ow in range(lo, hi):
                    row[ow * sw + j - pw] += gd[oh, ow]


@njit(parallel=True, cache=True)
def _avg_generic(x, y, div, kh, kw, sh, sw, ph, pw):
    for p in prange(x.shape[0]):
        _avg_plane(x[p], y[p], div, kh, kw, sh, sw, ph, pw)


@njit(parallel=True, cache=True)
def _avg_k2s2(x, y, div):
    for p in prange(x.shape[0]):
        _avg_plane(x[p], y[p], div, 2, 2, 2, 2, 0, 0)


@njit(parallel=True, cache=True)
def _avg_backward_generic(gd, dx, kh, kw, sh, sw, ph, pw):
    for p in prange(gd.shape[0]):
        _avg_plane_backward(gd[p], dx[p], kh, kw, sh, sw, ph, pw)


@njit(parallel=True, cache=True)
def _avg_backward_k2s2(gd, dx):
    for p in prange(gd.shape[0]):
        _avg_plane_backward(gd[p], dx[p], 2, 2, 2, 2, 0, 0)


def avg_pool2d_forward(x: np.ndarray, kernel_size: Pair, stride: Pair, padding: Pair, output_size: Pair,
                       count_include_pad: bool, divisor_override: int | None) -> np.ndarray:
    """See reference.pooling.avg_pool2d_forward. x: (..., H, W) -> (..., OH, OW)."""
    xs = _as_planes(x)
    div = avg_pool_divisor(x.shape[-2:], output_size, kernel_size, stride, padding,
                           count_include_pad, divisor_override).astype(x.dtype)
    y = np.empty((xs.shape[0],) + tuple(output_size), dtype=x.dtype)
    if (tuple(kernel_size), tuple(stride), tuple(padding)) == _K2S2:
        _avg_k2s2(xs, y, div)
    else:
        _avg_generic(xs, y, div, *kernel_size, *stride, *padding)
    return y.reshape(x.shape[:-2] + tuple(output_size))


def avg_pool2d_backward(grad: np.ndarray, input_shape: Sequence[int], kernel_size: Pair, stride: Pair,
                        padding: Pair, count_include_pad: bool, divisor_override: int | None) -> np.ndarray:
    """See reference.pooling.avg_pool2d_backward. grad: (..., OH, OW) -> dx: input_shape."""
    div = avg_pool_divisor(input_shape[-2:], grad.shape[-2:], kernel_size, stride, padding,
                           count_include_pad, divisor_override).astype(grad.dtype)
    gd = (_as_planes(grad) / div).astype(grad.dtype, copy=False)
    dx = np.empty((gd.shape[0],) + tuple(input_shape[-2:]), dtype=grad.dtype)
    if (tuple(kernel_size), tuple(stride), tuple(padding)) == _K2S2:
        _avg_backward_k2s2(gd, dx)
    else:
        _avg_backward_generic(gd, dx, *kernel_size, *stride, *padding)
    return dx.reshape(tuple(input_shape))


# --------------------------------------------------------------------------- adaptive pools

@njit(parallel=True, cache=True)
def _adaptive_avg(x, y, h0, h1, w0, w1):
    for p in prange(x.shape[0]):
        for oh in range(y.shape[1]):
            for ow in range(y.shape[2]):
                s = x[p, h0[oh]:h1[oh], w0[ow]:w1[ow]].sum()
                y[p, oh, ow] = s / ((h1[oh] - h0[oh]) * (w1[ow] - w0[ow]))


@njit(parallel=True, cache=True)
def _adaptive_avg_backward(g, dx, h0, h1, w0, w1):
    for p in prange(g.shape[0]):
        dx[p] = 0
        for oh in range(g.shape[1]):
            for ow in range(g.shape[2]):
                share = g[p, oh, ow] / ((h1[oh] - h0[oh]) * (w1[ow] - w0[ow]))
                dx[p, h0[oh]:h1[oh], w0[ow]:w1[ow]] += share


@njit(parallel=True, cache=True)
def _adaptive_max(x, y, idx, h0, h1, w0, w1):
    W = x.shape[2]
    for p in prange(x.shape[0]):
        for oh in range(y.shape[1]):
            for ow in range(y.shape[2]):
                m, a = x[p, h0[oh], w0[ow]], h0[oh] * W + w0[ow]
                for h in range(h0[oh], h1[oh]):
                    for w in range(w0[ow], w1[ow]):
                        v = x[p, h, w]
                        take = (v > m) | (v != v)
                        m = v if take else m
                        a = h * W + w if take else a
                y[p, oh, ow], idx[p, oh, ow] = m, a


def _bins(size: Sequence[int], output_size: Sequence[int]):
    (h0, h1), (w0, w1) = adaptive_bins(size[-2], output_size[-2]), adaptive_bins(size[-1], output_size[-1])
    return h0, h1, w0, w1


def adaptive_avg_pool2d_forward(x: np.ndarray, output_size: Pair) -> np.ndarray:
    """See reference.pooling.adaptive_avg_pool2d_forward."""
    xs = _as_planes(x)
    y = np.empty((xs.shape[0],) + tuple(output_size), dtype=x.dtype)
    _adaptive_avg(xs, y, *_bins(x.shape, output_size))
    return y.reshape(x.shape[:-2] + tuple(output_size))


def adaptive_avg_pool2d_backward(grad: np.ndarray, input_shape: Sequence[int]) -> np.ndarray:
    """See reference.pooling.adaptive_avg_pool2d_backward."""
    g = _as_planes(grad)
    dx = np.empty((g.shape[0],) + tuple(input_shape[-2:]), dtype=grad.dtype)
    _adaptive_avg_backward(g, dx, *_bins(input_shape, grad.shape))
    return dx.reshape(tuple(input_shape))


def adaptive_max_pool2d_forward(x: np.ndarray, output_size: Pair) -> tuple[np.ndarray, np.ndarray]:
    """See reference.pooling.adaptive_max_pool2d_forward."""
    xs = _as_planes(x)
    y = np.empty((xs.shape[0],) + tuple(output_size), dtype=x.dtype)
    idx = np.empty(y.shape, dtype=np.int64)
    _adaptive_max(xs, y, idx, *_bins(x.shape, output_size))
    shape = x.shape[:-2] + tuple(output_size)
    return y.reshape(shape), idx.reshape(shape)
