"""RoIPool in plain NumPy: the readable specification of every RoIPool rung (Fast R-CNN).

RoIPool snaps a region of interest to the pixel grid and max-pools it into ``(PH, PW)`` bins,
torchvision's rule:

    x1, y1, x2, y2 = round(box * spatial_scale)            (half away from zero, as C's round)
    roi_h = max(y2 - y1 + 1, 1),   bin_h = roi_h / PH      (real-valued)
    bin ph covers rows [floor(ph * bin_h), ceil((ph + 1) * bin_h)) + y1, clipped to [0, H)

and likewise for columns. Each output is the maximum of its bin (the first maximum in row-major
order) and remembers where it was as the flat index ``h * W + w`` in the plane; an empty bin
gives 0 and index -1. The backward sends each output's gradient to that pixel.

Shapes: x (N, C, H, W); rois (K, 5) rows ``(batch_index, x1, y1, x2, y2)`` already checked by
``tinyvision.ops.roi_pool``; output and argmax (K, C, PH, PW).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from tinyvision.kernels.compat import array_module

__all__ = ["roi_pool_forward", "roi_pool_backward"]  # the ladder: what tinyvision.kernels.dispatch asks for

Pair = tuple[int, int]


def _round_half_away(v: Any) -> Any:
    xp = array_module(v)
    return xp.sign(v) * xp.floor(xp.abs(v) + v.dtype.type(0.5))


def pool_bins(rois: Any, input_shape: Sequence[int], spatial_scale: float, output_size: Pair):
    """Per RoI and bin, the row range ``[h0, h1)`` (K, PH) and column range ``[w0, w1)`` (K, PW),
    already clipped to the plane, and the batch index (K,). Shared by every rung."""
    xp = array_module(rois)
    dtype = rois.dtype.type
    H, W = input_shape[-2:]
    corners = _round_half_away(rois[:, 1:] * dtype(spatial_scale)).astype(np.int64)  # x1, y1, x2, y2
    ranges = []
    for start, end, pooled, size in ((corners[:, 1], corners[:, 3], output_size[0], H),
                                     (corners[:, 0], corners[:, 2], output_size[1], W)):
        length = xp.maximum(end - start + 1, 1).astype(rois.dtype)
        bin_size = (length / dtype(pooled))[:, None]
        p = xp.arange(pooled, dtype=rois.dtype)[None, :]
        lo = xp.floor(p * bin_size).astype(np.int64) + start[:, None]
        hi = xp.ceil((p + dtype(1)) * bin_size).astype(np.int64) + start[:, None]
        ranges.append((xp.clip(lo, 0, size), xp.clip(hi, 0, size)))
    (h0, h1), (w0, w1) = ranges
    return rois[:, 0].astype(np.int64), h0, h1, w0, w1


def roi_pool_forward(x: np.ndarray, rois: np.ndarray, spatial_scale: float,
                     output_size: Pair) -> tuple[np.ndarray, np.ndarray]:
    """x (N, C, H, W), rois (K, 5) -> (max (K, C, PH, PW), argmax (K, C, PH, PW) int64)."""
    N, C, H, W = x.shape
    PH, PW = output_size
    batch, h0, h1, w0, w1 = pool_bins(rois, x.shape, spatial_scale, output_size)
    out = np.zeros((len(rois), C, PH, PW), dtype=x.dtype)
    argmax = np.full((len(rois), C, PH, PW), -1, dtype=np.int64)
    for k in range(len(rois)):
        for ph in range(PH):
            for pw in range(PW):
                if h1[k, ph] <= h0[k, ph] or w1[k, pw] <= w0[k, pw]:
                    continue                                   # empty bin: 0 and index -1
                window = x[batch[k], :, h0[k, ph]:h1[k, ph], w0[k, pw]:w1[k, pw]]
                flat = window.reshape(C, -1)
                tap = flat.argmax(axis=1)                      # the first maximum, row-major
                out[k, :, ph, pw] = flat[np.arange(C), tap]
                rows, cols = np.divmod(tap, window.shape[2])
                argmax[k, :, ph, pw] = (h0[k, ph] + rows) * W + w0[k, pw] + cols
    return out, argmax


def roi_pool_backward(grad: np.ndarray, argmax: np.ndarray, rois: np.ndarray,
                      input_shape: Sequence[int]) -> np.ndarray:
    """dL/dx: each output's gradient goes to the pixel that won its bin (summed over RoIs)."""
    N, C, H, W = input_shape
    dx = np.zeros((N, C, H * W), dtype=grad.dtype)
    batch = rois[:, 0].astype(np.int64)
    k, c, _, _ = np.nonzero(argmax >= 0)
    won = argmax >= 0
    np.add.at(dx, (batch[k], c, argmax[won]), grad[won])
    return dx.reshape(tuple(input_shape))
