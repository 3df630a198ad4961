"""RoIPool on the GPU with CuPy RawKernels: the same functions and signatures as
``reference/roi_pool.py`` (its docstring states the rule). Bins from the shared ``pool_bins``;
one thread per output bin; the backward scatters with ``atomicAdd`` (RoIs overlap).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from tinyvision.kernels.compat import cupy
from tinyvision.kernels.gpu.pooling import i32, launch
from tinyvision.kernels.reference.roi_pool import Pair, pool_bins

__all__ = ["roi_pool_forward", "roi_pool_backward"]  # the ladder: what tinyvision.kernels.dispatch asks for

_SOURCE = r"""
template<typename T>
__global__ void roi_pool_fwd(const T* x, const long long* batch, const long long* h0, const long long* h1,
                             const long long* w0, const long long* w1, T* out, long long* argmax,
                             long long total, int C, int H, int W, int PH, int PW) {
    long long o = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (o >= total) return;
    int pw = o % PW; int ph = (o / PW) % PH; int c = (o / ((long long)PW * PH)) % C;
    long long k = o / ((long long)PW * PH * C);
    const T* plane = x + (batch[k] * C + c) * (long long)H * W;
    T m = 0; long long a = -1;                                   // an empty bin: 0 and index -1
    for (long long h = h0[k * PH + ph]; h < h1[k * PH + ph]; ++h)
        for (long long w = w0[k * PW + pw]; w < w1[k * PW + pw]; ++w)
            if (a < 0 || plane[h * W + w] > m) { m = plane[h * W + w]; a = h * W + w; }
    out[o] = m; argmax[o] = a;
}

template<typename T>
__global__ void roi_pool_bwd(const T* grad, const long long* argmax, const long long* batch, T* dx,
                             long long total, int C, int HW, int PHW) {
    long long o = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (o >= total || argmax[o] < 0) return;
    long long kc = o / PHW;                                      // RoI k = kc / C, channel c = kc % C
    atomicAdd(dx + (batch[kc / C] * C + kc % C) * (long long)HW + argmax[o], grad[o]);
}
"""
_NAMES = ("roi_pool_fwd", "roi_pool_bwd")


def roi_pool_forward(x, rois, spatial_scale: float, output_size: Pair):
    """x (N, C, H, W), rois (K, 5) CuPy arrays -> (max (K, C, PH, PW), argmax int64)."""
    N, C, H, W = x.shape
    bins = [cupy.ascontiguousarray(a) for a in pool_bins(rois, x.shape, spatial_scale, output_size)]
    shape = (len(rois), C) + tuple(output_size)
    out, argmax = cupy.empty(shape, dtype=x.dtype), cupy.empty(shape, dtype=cupy.int64)
    if out.size:
        launch(_SOURCE, _NAMES, "roi_pool_fwd", x.dtype, out.size, cupy.ascontiguousarray(x), *bins, out, argmax,
               np.int64(out.size), *i32(C, H, W, *output_size))
    return out, argmax


def roi_pool_backward(grad, argmax, rois, input_shape: Sequence[int]):
    """dL/dx: each output's gradient goes to the pixel that won its bin (summed over RoIs)."""
    N, C, H, W = input_shape
    dx = cupy.zeros(tuple(input_shape), dtype=grad.dtype)
    if grad.size:
        launch(_SOURCE, _NAMES, "roi_pool_bwd", grad.dtype, grad.size, cupy.ascontiguousarray(grad), argmax,
               cupy.ascontiguousarray(rois[:, 0].astype(cupy.int64)), dx, np.int64(grad.size),
               *i32(C, H * W, grad.shape[2] * grad.shape[3]))
    return dx
