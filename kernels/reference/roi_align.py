"""RoIAlign in plain NumPy: the readable specification of every RoIAlign rung.

Mask R-CNN's RoIAlign turns a region of interest (a box on a feature map, in real-valued
coordinates) into a fixed ``(PH, PW)`` grid of features without rounding the box to the pixel
grid (RoIPool's quantisation error). Bin ``(ph, pw)`` of a RoI is the mean of ``grid_h *
grid_w`` regularly placed sample points, each read by bilinear interpolation:

    start = box * spatial_scale - (0.5 if aligned else 0)       (pixel centres at integers)
    roi_h = end_h - start_h   (at least 1 when not aligned, torchvision's legacy rule)
    bin_h = roi_h / PH,       grid_h = sampling_ratio if > 0 else ceil(roi_h / PH)
    y(ph, iy) = start_h + ph * bin_h + (iy + 0.5) * bin_h / grid_h      iy = 0 .. grid_h - 1

and likewise along x. A sample with ``y < -1 or y > H`` (or x outside ``[-1, W]``) reads 0;
otherwise y is clamped to ``[0, H - 1]`` and split between rows ``floor(y)`` and the next one with
weights ``1 - frac`` and ``frac`` (torchvision's CPU/CUDA rule, edge cases included). The output
is the sum of the samples divided by ``max(grid_h * grid_w, 1)``.

Because a sample's weight is (its row weight) x (its column weight), each RoI's output is two
small matrix products: with ``Ay[ph, h]`` the summed row weights of bin row ``ph`` and ``Ax[pw, w]``
the column weights, ``y[k, c] = Ay @ x[b, c] @ Ax.T / count`` and the backward is its transpose,
``dx[b, c] += Ay.T @ g[k, c] @ Ax / count``.

Shapes: x (N, C, H, W); rois (K, 5) rows ``(batch_index, x1, y1, x2, y2)`` in x's dtype, already
checked by ``tinyvision.ops.roi_align`` (finite, batch index in range); output (K, C, PH, PW).
The sample tables below are computed with the array module of ``rois`` and shared by all rungs.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from tinyvision.kernels.compat import array_module

__all__ = ["roi_align_forward", "roi_align_backward"]  # the ladder: what tinyvision.kernels.dispatch asks for

Pair = tuple[int, int]


def _roi_geometry(rois: Any, spatial_scale: float, output_size: Pair, sampling_ratio: int, aligned: bool):
    """Per RoI (arrays of length K): batch index, start and bin size along y and x, the number
    of samples per bin along y and x, and the divisor ``count``. Computed in the RoIs' dtype,
    as torchvision computes them in the input's scalar type (so the grid sizes agree exactly)."""
    xp = array_module(rois)
    dtype = rois.dtype.type
    offset = dtype(0.5 if aligned else 0.0)
    scale = dtype(spatial_scale)
    x0, y0 = rois[:, 1] * scale - offset, rois[:, 2] * scale - offset
    x1, y1 = rois[:, 3] * scale - offset, rois[:, 4] * scale - offset
    roi_w, roi_h = x1 - x0, y1 - y0
    if not aligned:  # the legacy (Detectron) rule: never smaller than one pixel
        roi_w, roi_h = xp.maximum(roi_w, dtype(1)), xp.maximum(roi_h, dtype(1))
    (ph, pw) = output_size
    bin_h, bin_w = roi_h / dtype(ph), roi_w / dtype(pw)
    if sampling_ratio > 0:
        grid_h = xp.full(len(rois), sampling_ratio, dtype=np.int64)
        grid_w = grid_h
    else:
        grid_h = xp.ceil(roi_h / dtype(ph)).astype(np.int64)
        grid_w = xp.ceil(roi_w / dtype(pw)).astype(np.int64)
    count = xp.maximum(grid_h * grid_w, 1).astype(rois.dtype)
    batch = rois[:, 0].astype(np.int64)
    return batch, (y0, bin_h, grid_h), (x0, bin_w, grid_w), count


def _axis_samples(start: Any, bin_size: Any, grid: Any, pooled: int, size: int):
    """The bilinear taps of every sample along one axis, for all RoIs at once.

    start, bin_size, grid: (K,). Returns ``low, high`` (K, P, G) int64 and ``w_low, w_high``
    (K, P, G) weights, G = the largest grid; a sample outside ``[-1, size]`` and the padding
    beyond a RoI's own grid have zero weights (and index 0, so that reading them is safe).
    """
    xp = array_module(start)
    dtype = start.dtype.type
    G = max(int(grid.max()) if len(grid) else 0, 1)
    p = xp.arange(pooled, dtype=start.dtype)[None, :, None]
    i = xp.arange(G, dtype=start.dtype)[None, None, :]
    step = (bin_size / xp.maximum(grid, 1).astype(start.dtype))[:, None, None]
    pos = start[:, None, None] + p * bin_size[:, None, None] + (i + dtype(0.5)) * step
    used = (xp.arange(G)[None, None, :] < grid[:, None, None]) & (pos >= -1) & (pos <= size)
    pos = xp.where(pos <= 0, dtype(0), pos)
    low = xp.floor(pos).astype(np.int64)
    edge = low >= size - 1                                  # at (or past) the last row: no neighbour
    low = xp.where(edge, size - 1, low)
    high = xp.where(edge, size - 1, low + 1)
    frac = xp.where(edge, dtype(0), pos - low.astype(start.dtype))
    zero = dtype(0)
    low, high = xp.where(used, low, 0), xp.where(used, high, 0)
    return low, high, xp.where(used, dtype(1) - frac, zero), xp.where(used, frac, zero)


def sample_tables(rois: Any, input_shape: Sequence[int], spatial_scale: float, output_size: Pair,
                  sampling_ratio: int, aligned: bool):
    """Everything a rung needs: batch (K,), the y taps and x taps (each four (K, P, G) arrays,
    see _axis_samples), the grids (K,) and the divisor count (K,)."""
    H, W = input_shape[-2:]
    batch, (y0, bin_h, grid_h), (x0, bin_w, grid_w), count = _roi_geometry(
        rois, spatial_scale, output_size, sampling_ratio, aligned)
    ys = _axis_samples(y0, bin_h, grid_h, output_size[0], H)
    xs = _axis_samples(x0, bin_w, grid_w, output_size[1], W)
    return batch, ys, xs, grid_h, grid_w, count


def _interpolation_matrix(low, high, w_low, w_high, size: int) -> np.ndarray:
    """A[p, i] = the summed weight that bin p's samples give to row (or column) i. low...: (P, G)."""
    P = low.shape[0]
    A = np.zeros((P, size), dtype=w_low.dtype)
    rows = np.broadcast_to(np.arange(P)[:, None], low.shape)
    np.add.at(A, (rows, low), w_low)
    np.add.at(A, (rows, high), w_high)
    return A


def roi_align_forward(x: np.ndarray, rois: np.ndarray, spatial_scale: float, output_size: Pair,
                      sampling_ratio: int, aligned: bool) -> np.ndarray:
    """x (N, C, H, W), rois (K, 5) -> (K, C, PH, PW): y[k, c] = Ay @ x[b, c] @ Ax.T / count."""
    N, C, H, W = x.shape
    batch, ys, xs, _, _, count = sample_tables(rois, x.shape, spatial_scale, output_size, sampling_ratio, aligned)
    out = np.zeros((len(rois), C) + tuple(output_size), dtype=x.dtype)
    for k in range(len(rois)):
        Ay = _interpolation_matrix(*(a[k] for a in ys), H)
        Ax = _interpolation_matrix(*(a[k] for a in xs), W)
        out[k] = Ay @ x[batch[k]] @ Ax.T / count[k]
    return out


def roi_align_backward(grad: np.ndarray, rois: np.ndarray, input_shape: Sequence[int], spatial_scale: float,
                       output_size: Pair, sampling_ratio: int, aligned: bool) -> np.ndarray:
    """dL/dx (input_shape) from dL/dy (K, C, PH, PW): dx[b, c] += Ay.T @ g[k, c] @ Ax / count."""
    N, C, H, W = input_shape
    batch, ys, xs, _, _, count = sample_tables(rois, input_shape, spatial_scale, output_size, sampling_ratio, aligned)
    dx = np.zeros(tuple(input_shape), dtype=grad.dtype)
    for k in range(len(rois)):
        Ay = _interpolation_matrix(*(a[k] for a in ys), H)
        Ax = _interpolation_matrix(*(a[k] for a in xs), W)
        dx[batch[k]] += Ay.T @ grad[k] @ Ax / count[k]
    return dx
