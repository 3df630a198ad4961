"""RoIPool on the CPU with Numba: the same functions and signatures as ``reference/roi_pool.py``
(its docstring states the rule). The bins come from the shared ``pool_bins``; the forward runs
in parallel over (RoI, channel) pairs, the backward over channels (RoIs overlap, channels never do).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from numba import njit, prange

from tinyvision.kernels.cpu import threading as _threading  # noqa: F401  (one Numba/BLAS thread policy)
from tinyvision.kernels.reference.roi_pool import Pair, pool_bins

__all__ = ["roi_pool_forward", "roi_pool_backward"]  # the ladder: what tinyvision.kernels.dispatch asks for


@njit(parallel=True, cache=True)
def _forward(x, batch, h0, h1, w0, w1, out, argmax):
    K, C, PH, PW = out.shape
    W = x.shape[3]
    for kc in prange(K * C):
        k, c = kc // C, kc % C
        plane = x[batch[k], c]
        for ph in range(PH):
            for pw in range(PW):
                m, a = x.dtype.type(0), -1                       # an empty bin: 0 and index -1
                for h in range(h0[k, ph], h1[k, ph]):
                    for w in range(w0[k, pw], w1[k, pw]):
                        if a < 0 or plane[h, w] > m:             # the first maximum wins ties
                            m, a = plane[h, w], h * W + w
                out[k, c, ph, pw] = m
                argmax[k, c, ph, pw] = a


@njit(parallel=True, cache=True)
def _backward(grad, argmax, batch, dx):
    K, C, PH, PW = grad.shape
    for c in prange(C):
        for k in range(K):
            plane = dx[batch[k], c]
            for ph in range(PH):
                for pw in range(PW):
                    a = argmax[k, c, ph, pw]
                    if a >= 0:
                        plane[a] += grad[k, c, ph, pw]


def roi_pool_forward(x: np.ndarray, rois: np.ndarray, spatial_scale: float,
                     output_size: Pair) -> tuple[np.ndarray, np.ndarray]:
    """x (N, C, H, W), rois (K, 5) -> (max (K, C, PH, PW), argmax (K, C, PH, PW) int64)."""
    batch, h0, h1, w0, w1 = pool_bins(rois, x.shape, spatial_scale, output_size)
    shape = (len(rois), x.shape[1]) + tuple(output_size)
    out, argmax = np.empty(shape, dtype=x.dtype), np.empty(shape, dtype=np.int64)
    _forward(np.ascontiguousarray(x), batch, h0, h1, w0, w1, out, argmax)
    return out, argmax


def roi_pool_backward(grad: np.ndarray, argmax: np.ndarray, rois: np.ndarray,
                      input_shape: Sequence[int]) -> np.ndarray:
    """dL/dx: each output's gradient goes to the pixel that won its bin (summed over RoIs)."""
    N, C, H, W = input_shape
    dx = np.zeros((N, C, H * W), dtype=grad.dtype)
    _backward(np.ascontiguousarray(grad), argmax, rois[:, 0].astype(np.int64), dx)
    return dx.reshape(tuple(input_shape))
