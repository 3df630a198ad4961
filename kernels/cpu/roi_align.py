"""RoIAlign on the CPU with Numba: the same functions and signatures as ``reference/roi_align.py``
(its docstring states the rule).

The sample taps (two rows and two columns with their weights, per sample) are computed once for
all RoIs by the shared ``sample_tables``; the kernels only gather and scatter:

* forward: parallel over (RoI, channel) pairs; each output bin sums its samples, reading the two
  rows of a sample once for all its columns;
* backward: parallel over channels, each thread walking every RoI: RoIs overlap, so two threads
  must never add into the same input pixel, and different channels never do.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from numba import njit, prange

from tinyvision.kernels.cpu import threading as _threading  # noqa: F401  (one Numba/BLAS thread policy)
from tinyvision.kernels.reference.roi_align import Pair, sample_tables

__all__ = ["roi_align_forward", "roi_align_backward"]  # the ladder: what tinyvision.kernels.dispatch asks for


@njit(parallel=True, cache=True)
def _forward(x, batch, ylo, yhi, wylo, wyhi, xlo, xhi, wxlo, wxhi, grid_h, grid_w, count, out):
    K, C, PH, PW = out.shape
    for kc in prange(K * C):
        k, c = kc // C, kc % C
        plane = x[batch[k], c]
        for ph in range(PH):
            for pw in range(PW):
                s = x.dtype.type(0)
                for iy in range(grid_h[k]):
                    a, b = wylo[k, ph, iy], wyhi[k, ph, iy]
                    r0, r1 = plane[ylo[k, ph, iy]], plane[yhi[k, ph, iy]]
                    for ix in range(grid_w[k]):
                        l, h = xlo[k, pw, ix], xhi[k, pw, ix]
                        wl, wh = wxlo[k, pw, ix], wxhi[k, pw, ix]
                        s += a * (wl * r0[l] + wh * r0[h]) + b * (wl * r1[l] + wh * r1[h])
                out[k, c, ph, pw] = s / count[k]


@njit(parallel=True, cache=True)
def _backward(grad, batch, ylo, yhi, wylo, wyhi, xlo, xhi, wxlo, wxhi, grid_h, grid_w, count, dx):
    K, C, PH, PW = grad.shape
    for c in prange(C):
        for k in range(K):
            plane = dx[batch[k], c]
            for ph in range(PH):
                for pw in range(PW):
                    g = grad[k, c, ph, pw] / count[k]
                    for iy in range(grid_h[k]):
                        ga, gb = g * wylo[k, ph, iy], g * wyhi[k, ph, iy]
                        r0, r1 = ylo[k, ph, iy], yhi[k, ph, iy]
                        for ix in range(grid_w[k]):
                            l, h = xlo[k, pw, ix], xhi[k, pw, ix]
                            wl, wh = wxlo[k, pw, ix], wxhi[k, pw, ix]
                            plane[r0, l] += ga * wl
                            plane[r0, h] += ga * wh
                            plane[r1, l] += gb * wl
                            plane[r1, h] += gb * wh


def roi_align_forward(x: np.ndarray, rois: np.ndarray, spatial_scale: float, output_size: Pair,
                      sampling_ratio: int, aligned: bool) -> np.ndarray:
    """x (N, C, H, W), rois (K, 5) -> (K, C, PH, PW)."""
    batch, ys, xs, grid_h, grid_w, count = sample_tables(rois, x.shape, spatial_scale, output_size,
                                                         sampling_ratio, aligned)
    out = np.empty((len(rois), x.shape[1]) + tuple(output_size), dtype=x.dtype)
    _forward(np.ascontiguousarray(x), batch, *ys, *xs, grid_h, grid_w, count, out)
    return out


def roi_align_backward(grad: np.ndarray, rois: np.ndarray, input_shape: Sequence[int], spatial_scale: float,
                       output_size: Pair, sampling_ratio: int, aligned: bool) -> np.ndarray:
    """dL/dx (input_shape) from dL/dy (K, C, PH, PW)."""
    batch, ys, xs, grid_h, grid_w, count = sample_tables(rois, input_shape, spatial_scale, output_size,
                                                         sampling_ratio, aligned)
    dx = np.zeros(tuple(input_shape), dtype=grad.dtype)
    _backward(np.ascontiguousarray(grad), batch, *ys, *xs, grid_h, grid_w, count, dx)
    return dx
