"""Pooling in plain NumPy: the readable specification of every pooling rung.

All kernels work on planes: ``x`` has shape ``(..., H, W)`` (NCHW, or CHW) and each
``(H, W)`` plane is pooled on its own. Pairs like ``kernel_size`` are ``(rows, cols)``
tuples of ints, already checked by ``tinyvision.functional.pooling``.

Window ``(oh, ow)`` of a max/avg pool reads the input pixels

    h = oh * stride_h - padding_h + i * dilation_h     i = 0 .. kernel_h - 1
    w = ow * stride_w - padding_w + j * dilation_w     j = 0 .. kernel_w - 1

and ignores the taps that fall outside ``[0, H) x [0, W)`` (the padding). Max-pool indices
are flat positions ``h * W + w`` in the input plane, as in PyTorch; ties keep the first tap
in row-major window order. A window that holds no input pixel at all (possible only with
dilation) gives ``-inf`` and index ``-1``, which the backward skips.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# The ladder: what every rung of this op defines with one signature and kernels/dispatch.py
# reaches by name (tests/test_kernels_ladder.py checks that the rungs agree).
__all__ = ["max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward",
           "adaptive_avg_pool2d_forward", "adaptive_avg_pool2d_backward",
           "adaptive_max_pool2d_forward"]

Pair = tuple[int, int]


# --------------------------------------------------------------------------- shared helpers
# (the Numba and CuPy rungs import these, so that every rung uses the same rules)

def avg_pool_divisor(size: Pair, output_size: Pair, kernel_size: Pair, stride: Pair,
                     padding: Pair, count_include_pad: bool, divisor_override: int | None) -> np.ndarray:
    """The divisor of each output of ``avg_pool2d``, shape ``(OH, OW)``, PyTorch's rule.

    Per axis, the window ``[o*s - p, o*s - p + k)`` is first clipped to the padded input
    ``[-p, n + p)`` (a ceil_mode window can reach past it): its length there is the divisor
    with ``count_include_pad``; without it, the window is clipped to the input ``[0, n)``.
    The 2-D divisor is the product of the two axes' divisors (or ``divisor_override``).
    """
    if divisor_override is not None:
        return np.full(output_size, float(divisor_override))
    per_axis = []
    for n, o, k, s, p in zip(size, output_size, kernel_size, stride, padding):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, n + p)
        if not count_include_pad:
            start, end = np.maximum(start, 0), np.minimum(end, n)
        per_axis.append((end - start).astype(np.float64))
    return per_axis[0][:, None] * per_axis[1][None, :]


def adaptive_bins(size: int, output_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Bin ``i`` of an adaptive pool covers ``[floor(i*n/o), ceil((i+1)*n/o))`` (PyTorch's bins;
    they overlap when ``n`` is not a multiple of ``o``, and are never empty)."""
    i = np.arange(output_size)
    start = (i * size) // output_size
    end = -((-(i + 1) * size) // output_size)  # ceil division on integers
    return start.astype(np.int64), end.astype(np.int64)


def _planes(x: np.ndarray) -> np.ndarray:
    """``(..., H, W)`` -> ``(P, H, W)``, P = the product of the leading dims."""
    return x.reshape((-1,) + x.shape[-2:])


def _windows(x: np.ndarray, fill: float, kernel_size: Pair, stride: Pair, padding: Pair,
             dilation: Pair, output_size: Pair) -> np.ndarray:
    """Every pooling window as a view, shape ``(P, OH, OW, kh, kw)``.

    Pads with ``fill`` (-inf for max, 0 for sum) on both sides, and a little more on the
    bottom/right when a ceil_mode window reaches past the padded input.
    """
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = kernel_size, stride, padding, dilation, output_size
    span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1  # the effective (dilated) kernel
    x = _planes(x)
    extra_h = max(0, (oh - 1) * sh + span_h - (x.shape[1] + 2 * ph))
    extra_w = max(0, (ow - 1) * sw + span_w - (x.shape[2] + 2 * pw))
    xp = np.pad(x, ((0, 0), (ph, ph + extra_h), (pw, pw + extra_w)), constant_values=fill)
    win = sliding_window_view(xp, (span_h, span_w), axis=(1, 2))  # (P, H', W', span_h, span_w)
    return win[:, :(oh - 1) * sh + 1:sh, :(ow - 1) * sw + 1:sw, ::dh, ::dw]


# --------------------------------------------------------------------------- max pool

def max_pool2d_forward(x: np.ndarray, kernel_size: Pair, stride: Pair, padding: Pair,
                       dilation: Pair, output_size: Pair) -> tuple[np.ndarray, np.ndarray]:
    """y[oh, ow] = max over the window; also the argmax as a flat index into the plane.

    x: (..., H, W) -> y: (..., OH, OW) of x's dtype, indices: (..., OH, OW) int64.
    """
    H, W = x.shape[-2:]
    win = _windows(x, -np.inf, kernel_size, stride, padding, dilation, output_size)
    P, OH, OW, kh, kw = win.shape
    flat = win.reshape(P, OH, OW, kh * kw)
    tap = flat.argmax(axis=-1)                          # first maximum in row-major window order
    y = np.take_along_axis(flat, tap[..., None], axis=-1)[..., 0]
    # window tap (i, j) of output (oh, ow) -> input pixel (h, w) -> flat index h * W + w
    i, j = np.divmod(tap, kw)
    h = np.arange(OH)[:, None] * stride[0] - padding[0] + i * dilation[0]
    w = np.arange(OW)[None, :] * stride[1] - padding[1] + j * dilation[1]
    indices = np.where(np.isneginf(y), -1, h * W + w)   # -1: the window held no input pixel
    lead = x.shape[:-2]
    return y.reshape(lead + (OH, OW)), indices.astype(np.int64).reshape(lead + (OH, OW))


def max_pool2d_backward(grad: np.ndarray, indices: np.ndarray, input_shape: Sequence[int]) -> np.ndarray:
    """dL/dx: each output's gradient goes to the one input pixel that won its window
    (summed where overlapping windows picked the same pixel). Also adaptive max-pool's backward.

    grad, indices: (..., OH, OW) -> dx: input_shape (..., H, W).
    """
    H, W = input_shape[-2:]
    g = grad.reshape(-1, grad.shape[-2] * grad.shape[-1])
    idx = indices.reshape(g.shape)
    dx = np.zeros((g.shape[0], H * W), dtype=grad.dtype)
    plane = np.broadcast_to(np.arange(g.shape[0])[:, None], g.shape)
    keep = idx >= 0
    np.add.at(dx, (plane[keep], idx[keep]), g[keep])    # dx[p, idx[p, o]] += g[p, o]
    return dx.reshape(tuple(input_shape))


# --------------------------------------------------------------------------- average pool

def avg_pool2d_forward(x: np.ndarray, kernel_size: Pair, stride: Pair, padding: Pair, output_size: Pair,
                       count_include_pad: bool, divisor_override: int | None) -> np.ndarray:
    """y[oh, ow] = (sum of the window's input pixels) / divisor[oh, ow] (see avg_pool_divisor).

    x: (..., H, W) -> y: (..., OH, OW).
    """
    win = _windows(x, 0.0, kernel_size, stride, padding, (1, 1), output_size)
    div = avg_pool_divisor(x.shape[-2:], output_size, kernel_size, stride, padding,
                           count_include_pad, divisor_override)
    y = win.sum(axis=(-2, -1)) / div
    return y.astype(x.dtype, copy=False).reshape(x.shape[:-2] + tuple(output_size))


def avg_pool2d_backward(grad: np.ndarray, input_shape: Sequence[int], kernel_size: Pair, stride: Pair,
                        padding: Pair, count_include_pad: bool, divisor_override: int | None) -> np.ndarray:
    """dL/dx[h, w] = sum over the windows that contain (h, w) of grad / divisor.

    Written as one strided slice-add per kernel tap (i, j): tap (i, j) of every window is
    the padded pixel (oh*s + i, ow*s + j). grad: (..., OH, OW) -> dx: input_shape.
    """
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    H, W = input_shape[-2:]
    OH, OW = grad.shape[-2:]
    div = avg_pool_divisor((H, W), (OH, OW), kernel_size, stride, padding, count_include_pad,
                           divisor_override)
    g = _planes(grad) / div
    # padded canvas, large enough for ceil_mode windows that reach past the right padding
    Hp, Wp = max(H + 2 * ph, (OH - 1) * sh + kh), max(W + 2 * pw, (OW - 1) * sw + kw)
    dxp = np.zeros((g.shape[0], Hp, Wp), dtype=np.result_type(grad.dtype, div.dtype))
    for i in range(kh):
        for j in range(kw):
            dxp[:, i:i + (OH - 1) * sh + 1:sh, j:j + (OW - 1) * sw + 1:sw] += g
    return dxp[:, ph:ph + H, pw:pw + W].astype(grad.dtype).reshape(tuple(input_shape))


# --------------------------------------------------------------------------- adaptive pools

def adaptive_avg_pool2d_forward(x: np.ndarray, output_size: Pair) -> np.ndarray:
    """y[oh, ow] = mean of bin (oh, ow) (see adaptive_bins). x: (..., H, W) -> (..., OH, OW)."""
    (h0, h1), (w0, w1) = adaptive_bins(x.shape[-2], output_size[0]), adaptive_bins(x.shape[-1], output_size[1])
    y = np.empty(x.shape[:-2] + tuple(output_size), dtype=x.dtype)
    for oh in range(output_size[0]):
        for ow in range(output_size[1]):
            y[..., oh, ow] = x[..., h0[oh]:h1[oh], w0[ow]:w1[ow]].mean(axis=(-2, -1))
    return y


def adaptive_avg_pool2d_backward(grad: np.ndarray, input_shape: Sequence[int]) -> np.ndarray:
    """dL/dx = sum over the bins that contain the pixel of grad / (bin size)."""
    OH, OW = grad.shape[-2:]
    (h0, h1), (w0, w1) = adaptive_bins(input_shape[-2], OH), adaptive_bins(input_shape[-1], OW)
    dx = np.zeros(tuple(input_shape), dtype=grad.dtype)
    for oh in range(OH):
        for ow in range(OW):
            count = (h1[oh] - h0[oh]) * (w1[ow] - w0[ow])
            dx[..., h0[oh]:h1[oh], w0[ow]:w1[ow]] += grad[..., oh, ow, None, None] / count
    return dx


def adaptive_max_pool2d_forward(x: np.ndarray, output_size: Pair) -> tuple[np.ndarray, np.ndarray]:
    """y[oh, ow] = max of bin (oh, ow), and its flat index h * W + w in the input plane.
    The backward is max_pool2d_backward."""
    H, W = x.shape[-2:]
    (h0, h1), (w0, w1) = adaptive_bins(H, output_size[0]), adaptive_bins(W, output_size[1])
    y = np.empty(x.shape[:-2] + tuple(output_size), dtype=x.dtype)
    indices = np.empty(y.shape, dtype=np.int64)
    for oh in range(output_size[0]):
        for ow in range(output_size[1]):
            b = x[..., h0[oh]:h1[oh], w0[ow]:w1[ow]]
            flat = b.reshape(b.shape[:-2] + (-1,))
            tap = flat.argmax(axis=-1)
            i, j = np.divmod(tap, b.shape[-1])
            y[..., oh, ow] = np.take_along_axis(flat, tap[..., None], axis=-1)[..., 0]
            indices[..., oh, ow] = (h0[oh] + i) * W + w0[ow] + j
    return y, indices
