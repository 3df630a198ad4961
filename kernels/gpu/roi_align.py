"""RoIAlign on the GPU with CuPy RawKernels: the same functions and signatures as
``reference/roi_align.py`` (its docstring states the rule).

The sample taps come from the shared ``sample_tables`` (computed with CuPy on the device). The
forward runs one thread per output bin (RoI, channel, ph, pw); the backward too, adding its
share into the input gradient with ``atomicAdd`` (overlapping RoIs and neighbouring bins touch
the same pixels from different threads).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from tinyvision.kernels.compat import cupy
from tinyvision.kernels.gpu.pooling import i32, launch
from tinyvision.kernels.reference.roi_align import Pair, sample_tables

__all__ = ["roi_align_forward", "roi_align_backward"]  # the ladder: what tinyvision.kernels.dispatch asks for

_SOURCE = r"""
// Flat output id o -> RoI k, channel c, bin (ph, pw); the taps of RoI k live at [k][p][g].
#define BIN_ID long long o = blockIdx.x * (long long)blockDim.x + threadIdx.x; if (o >= total) return; \
               int pw = o % PW; int ph = (o / PW) % PH; int c = (o / ((long long)PW * PH)) % C; \
               long long k = o / ((long long)PW * PH * C);

// the sample tables (see sample_tables), then the map sizes
#define TABLES const long long* batch, const long long* ylo, const long long* yhi, const T* wylo, const T* wyhi, \
               const long long* xlo, const long long* xhi, const T* wxlo, const T* wxhi, \
               const long long* grid_h, const long long* grid_w, const T* count
#define SIZES long long total, int C, int H, int W, int PH, int PW, int GH, int GW
#define TAPS long long ty = (k * PH + ph) * GH, tx = (k * PW + pw) * GW;

template<typename T>
__global__ void roi_align_fwd(const T* x, TABLES, T* out, SIZES) {
    BIN_ID TAPS
    const T* plane = x + (batch[k] * C + c) * (long long)H * W;
    T s = 0;
    for (int iy = 0; iy < grid_h[k]; ++iy) {
        T a = wylo[ty + iy], b = wyhi[ty + iy];
        const T* r0 = plane + ylo[ty + iy] * W; const T* r1 = plane + yhi[ty + iy] * W;
        for (int ix = 0; ix < grid_w[k]; ++ix) {
            long long l = xlo[tx + ix], h = xhi[tx + ix];
            T wl = wxlo[tx + ix], wh = wxhi[tx + ix];
            s += a * (wl * r0[l] + wh * r0[h]) + b * (wl * r1[l] + wh * r1[h]);
        }
    }
    out[o] = s / count[k];
}

template<typename T>
__global__ void roi_align_bwd(const T* grad, TABLES, T* dx, SIZES) {
    BIN_ID TAPS
    T* plane = dx + (batch[k] * C + c) * (long long)H * W;
    T g = grad[o] / count[k];
    for (int iy = 0; iy < grid_h[k]; ++iy) {
        T ga = g * wylo[ty + iy], gb = g * wyhi[ty + iy];
        T* r0 = plane + ylo[ty + iy] * W; T* r1 = plane + yhi[ty + iy] * W;
        for (int ix = 0; ix < grid_w[k]; ++ix) {
            long long l = xlo[tx + ix], h = xhi[tx + ix];
            T wl = wxlo[tx + ix], wh = wxhi[tx + ix];
            atomicAdd(r0 + l, ga * wl); atomicAdd(r0 + h, ga * wh);
            atomicAdd(r1 + l, gb * wl); atomicAdd(r1 + h, gb * wh);
        }
    }
}
"""
_NAMES = ("roi_align_fwd", "roi_align_bwd")


def _tables(rois: Any, input_shape: Sequence[int], spatial_scale: float, output_size: Pair, sampling_ratio: int,
            aligned: bool) -> tuple:
    batch, ys, xs, grid_h, grid_w, count = sample_tables(rois, input_shape, spatial_scale, output_size,
                                                         sampling_ratio, aligned)
    arrays = [cupy.ascontiguousarray(a) for a in (batch, *ys, *xs, grid_h, grid_w, count)]
    return arrays, int(ys[0].shape[2]), int(xs[0].shape[2])


def roi_align_forward(x, rois, spatial_scale: float, output_size: Pair, sampling_ratio: int, aligned: bool):
    """x (N, C, H, W), rois (K, 5) CuPy arrays -> (K, C, PH, PW)."""
    N, C, H, W = x.shape
    tables, GH, GW = _tables(rois, x.shape, spatial_scale, output_size, sampling_ratio, aligned)
    out = cupy.empty((len(rois), C) + tuple(output_size), dtype=x.dtype)
    if out.size:
        launch(_SOURCE, _NAMES, "roi_align_fwd", x.dtype, out.size, cupy.ascontiguousarray(x), *tables, out,
               np.int64(out.size), *i32(C, H, W, *output_size, GH, GW))
    return out


def roi_align_backward(grad, rois, input_shape: Sequence[int], spatial_scale: float, output_size: Pair,
                       sampling_ratio: int, aligned: bool):
    """dL/dx (input_shape) from dL/dy (K, C, PH, PW)."""
    N, C, H, W = input_shape
    tables, GH, GW = _tables(rois, input_shape, spatial_scale, output_size, sampling_ratio, aligned)
    dx = cupy.zeros(tuple(input_shape), dtype=grad.dtype)
    if grad.size:
        launch(_SOURCE, _NAMES, "roi_align_bwd", grad.dtype, grad.size, cupy.ascontiguousarray(grad), *tables, dx,
               np.int64(grad.size), *i32(C, H, W, *output_size, GH, GW))
    return dx
