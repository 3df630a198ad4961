"""Pooling on the GPU with CuPy RawKernels: the same functions and signatures as
``reference/pooling.py``.

One thread per output for the forwards (each reads its window; the plane index, oh and ow
come from the flat thread id). The backwards scatter with ``atomicAdd``: overlapping windows
(3x3 stride 2) send gradient to the same input pixel from different threads.
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

import numpy as np

from tinyvision.kernels.compat import cupy
from tinyvision.kernels.reference.pooling import Pair, adaptive_bins, avg_pool_divisor

# The ladder: what every rung of this op defines with one signature and kernels/dispatch.py
# reaches by name (tests/test_kernels_ladder.py checks that the rungs agree).
__all__ = ["max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward",
           "adaptive_avg_pool2d_forward", "adaptive_avg_pool2d_backward",
           "adaptive_max_pool2d_forward"]

# ------------------------------------------------------------------ CUDA plumbing (also used by
# gpu/attention.py): templated C++ source over float/double, compiled once by CuPy's RawModule
# on first use. Without CuPy this module still imports; dispatch never picks it for NumPy arrays.

# -inf for both element types, and the max-pool comparison (a NaN always wins, as torch)
PRELUDE = r"""
template<typename T> __device__ __forceinline__ T neg_inf();
template<> __device__ __forceinline__ float neg_inf<float>() { return __int_as_float(0xff800000); }
template<> __device__ __forceinline__ double neg_inf<double>() { return __longlong_as_double(0xfff0000000000000ULL); }
template<typename T> __device__ __forceinline__ bool beats(T v, T m) { return v > m || v != v; }
"""

THREADS = 256
C_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}


@functools.lru_cache(maxsize=None)
def _module(source: str, names: tuple[str, ...]) -> Any:
    expressions = [f"{n}<{t}>" for n in names for t in C_TYPES.values()]
    return cupy.RawModule(code=PRELUDE + source, options=("-std=c++14",), name_expressions=expressions)


def launch(source: str, names: tuple[str, ...], name: str, dtype: Any, threads: int, *args: Any) -> None:
    """Run kernel ``name<dtype>`` from ``source`` with one thread per work item (``threads`` items)."""
    if np.dtype(dtype) not in C_TYPES:
        raise TypeError(f"GPU kernel {name}: dtype must be float32 or float64, got {dtype}")
    fn = _module(source, names).get_function(f"{name}<{C_TYPES[np.dtype(dtype)]}>")
    blocks = max(1, (threads + THREADS - 1) // THREADS)
    fn((blocks,), (THREADS,), args)


def i32(*values: int) -> tuple:
    return tuple(np.int32(v) for v in values)


# ------------------------------------------------------------------ pooling kernels

_SOURCE = r"""
// Flat output id o -> plane p, row oh, column ow.
#define OUTPUT_ID  long long o = blockIdx.x * (long long)blockDim.x + threadIdx.x; if (o >= total) return; \
                   int ow = o % OW; int oh = (o / OW) % OH; long long p = o / ((long long)OH * OW);

template<typename T>
__global__ void max_fwd(const T* x, T* y, long long* idx, long long total, int H, int W, int OH, int OW,
                        int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw) {
    OUTPUT_ID
    const T* plane = x + p * H * W;
    T m = neg_inf<T>(); long long a = -1;
    for (int i = 0; i < kh; ++i) {
        int h = oh * sh - ph + i * dh;
        if (h < 0 || h >= H) continue;
        for (int j = 0; j < kw; ++j) {
            int w = ow * sw - pw + j * dw;
            if (w < 0 || w >= W) continue;
            T v = plane[h * W + w];
            if (beats(v, m)) { m = v; a = h * W + w; }
        }
    }
    y[o] = m; idx[o] = a;
}

template<typename T>
__global__ void max_bwd(const T* g, const long long* idx, T* dx, long long total, int OHW, int HW) {
    long long o = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (o >= total || idx[o] < 0) return;
    atomicAdd(dx + (o / OHW) * HW + idx[o], g[o]);
}

template<typename T>
__global__ void avg_fwd(const T* x, T* y, const T* div, long long total, int H, int W, int OH, int OW,
                        int kh, int kw, int sh, int sw, int ph, int pw) {
    OUTPUT_ID
    const T* plane = x + p * H * W;
    T s = 0;
    for (int h = max(oh * sh - ph, 0); h < min(oh * sh - ph + kh, H); ++h)
        for (int w = max(ow * sw - pw, 0); w < min(ow * sw - pw + kw, W); ++w)
            s += plane[h * W + w];
    y[o] = s / div[oh * OW + ow];
}

template<typename T>
__global__ void avg_bwd(const T* g, T* dx, const T* div, long long total, int H, int W, int OH, int OW,
                        int kh, int kw, int sh, int sw, int ph, int pw) {
    OUTPUT_ID
    T share = g[o] / div[oh * OW + ow];
    T* plane = dx + p * H * W;
    for (int h = max(oh * sh - ph, 0); h < min(oh * sh - ph + kh, H); ++h)
        for (int w = max(ow * sw - pw, 0); w < min(ow * sw - pw + kw, W); ++w)
            atomicAdd(plane + h * W + w, share);
}

template<typename T>
__global__ void adaptive_avg_fwd(const T* x, T* y, const long long* h0, const long long* h1,
                                 const long long* w0, const long long* w1, long long total,
                                 int H, int W, int OH, int OW) {
    OUTPUT_ID
    const T* plane = x + p * H * W;
    T s = 0;
    for (long long h = h0[oh]; h < h1[oh]; ++h)
        for (long long w = w0[ow]; w < w1[ow]; ++w) s += plane[h * W + w];
    y[o] = s / (T)((h1[oh] - h0[oh]) * (w1[ow] - w0[ow]));
}

template<typename T>
__global__ void adaptive_avg_bwd(const T* g, T* dx, const long long* h0, const long long* h1,
                                 const long long* w0, const long long* w1, long long total,
                                 int H, int W, int OH, int OW) {
    OUTPUT_ID
    T share = g[o] / (T)((h1[oh] - h0[oh]) * (w1[ow] - w0[ow]));
    for (long long h = h0[oh]; h < h1[oh]; ++h)
        for (long long w = w0[ow]; w < w1[ow]; ++w) atomicAdd(dx + p * H * W + h * W + w, share);
}

template<typename T>
__global__ void adaptive_max_fwd(const T* x, T* y, long long* idx, const long long* h0, const long long* h1,
                                 const long long* w0, const long long* w1, long long total,
                                 int H, int W, int OH, int OW) {
    OUTPUT_ID
    const T* plane = x + p * H * W;
    T m = plane[h0[oh] * W + w0[ow]]; long long a = h0[oh] * W + w0[ow];
    for (long long h = h0[oh]; h < h1[oh]; ++h)
        for (long long w = w0[ow]; w < w1[ow]; ++w)
            if (beats(plane[h * W + w], m)) { m = plane[h * W + w]; a = h * W + w; }
    y[o] = m; idx[o] = a;
}
"""
_NAMES = ("max_fwd", "max_bwd", "avg_fwd", "avg_bwd", "adaptive_avg_fwd", "adaptive_avg_bwd", "adaptive_max_fwd")


def _run(name: str, dtype: Any, total: int, *args: Any) -> None:
    launch(_SOURCE, _NAMES, name, dtype, total, *args)


def _planes(x):
    return cupy.ascontiguousarray(x)


def max_pool2d_forward(x, kernel_size: Pair, stride: Pair, padding: Pair, dilation: Pair, output_size: Pair):
    """See reference.pooling.max_pool2d_forward."""
    x = _planes(x)
    shape = x.shape[:-2] + tuple(output_size)
    y, idx = cupy.empty(shape, dtype=x.dtype), cupy.empty(shape, dtype=np.int64)
    _run("max_fwd", x.dtype, y.size, x, y, idx, np.int64(y.size), *i32(*x.shape[-2:], *output_size),
         *i32(*kernel_size, *stride, *padding, *dilation))
    return y, idx


def max_pool2d_backward(grad, indices, input_shape: Sequence[int]):
    """See reference.pooling.max_pool2d_backward."""
    grad, indices = _planes(grad), _planes(indices)
    dx = cupy.zeros(tuple(input_shape), dtype=grad.dtype)
    _run("max_bwd", grad.dtype, grad.size, grad, indices, dx, np.int64(grad.size),
         *i32(grad.shape[-2] * grad.shape[-1], input_shape[-2] * input_shape[-1]))
    return dx


def _divisor(size, output_size, kernel_size, stride, padding, count_include_pad, divisor_override, dtype):
    div = avg_pool_divisor(tuple(size), tuple(output_size), kernel_size, stride, padding, count_include_pad,
                           divisor_override)
    return cupy.asarray(div, dtype=dtype)


def avg_pool2d_forward(x, kernel_size: Pair, stride: Pair, padding: Pair, output_size: Pair,
                       count_include_pad: bool, divisor_override: int | None):
    """See reference.pooling.avg_pool2d_forward."""
    x = _planes(x)
    y = cupy.empty(x.shape[:-2] + tuple(output_size), dtype=x.dtype)
    div = _divisor(x.shape[-2:], output_size, kernel_size, stride, padding, count_include_pad,
                   divisor_override, x.dtype)
    _run("avg_fwd", x.dtype, y.size, x, y, div, np.int64(y.size), *i32(*x.shape[-2:], *output_size),
         *i32(*kernel_size, *stride, *padding))
    return y


def avg_pool2d_backward(grad, input_shape: Sequence[int], kernel_size: Pair, stride: Pair, padding: Pair,
                        count_include_pad: bool, divisor_override: int | None):
    """See reference.pooling.avg_pool2d_backward."""
    grad = _planes(grad)
    dx = cupy.zeros(tuple(input_shape), dtype=grad.dtype)
    div = _divisor(input_shape[-2:], grad.shape[-2:], kernel_size, stride, padding, count_include_pad,
                   divisor_override, grad.dtype)
    _run("avg_bwd", grad.dtype, grad.size, grad, dx, div, np.int64(grad.size),
         *i32(*input_shape[-2:], *grad.shape[-2:]), *i32(*kernel_size, *stride, *padding))
    return dx


def _bins(size: Sequence[int], output_size: Sequence[int]) -> tuple:
    (h0, h1), (w0, w1) = adaptive_bins(size[-2], output_size[-2]), adaptive_bins(size[-1], output_size[-1])
    return tuple(cupy.asarray(b) for b in (h0, h1, w0, w1))


def adaptive_avg_pool2d_forward(x, output_size: Pair):
    """See reference.pooling.adaptive_avg_pool2d_forward."""
    x = _planes(x)
    y = cupy.empty(x.shape[:-2] + tuple(output_size), dtype=x.dtype)
    _run("adaptive_avg_fwd", x.dtype, y.size, x, y, *_bins(x.shape, output_size), np.int64(y.size),
         *i32(*x.shape[-2:], *output_size))
    return y


def adaptive_avg_pool2d_backward(grad, input_shape: Sequence[int]):
    """See reference.pooling.adaptive_avg_pool2d_backward."""
    grad = _planes(grad)
    dx = cupy.zeros(tuple(input_shape), dtype=grad.dtype)
    _run("adaptive_avg_bwd", grad.dtype, grad.size, grad, dx, *_bins(input_shape, grad.shape),
         np.int64(grad.size), *i32(*input_shape[-2:], *grad.shape[-2:]))
    return dx


def adaptive_max_pool2d_forward(x, output_size: Pair):
    """See reference.pooling.adaptive_max_pool2d_forward."""
    x = _planes(x)
    shape = x.shape[:-2] + tuple(output_size)
    y, idx = cupy.empty(shape, dtype=x.dtype), cupy.empty(shape, dtype=np.int64)
    _run("adaptive_max_fwd", x.dtype, y.size, x, y, idx, *_bins(x.shape, output_size), np.int64(y.size),
         *i32(*x.shape[-2:], *output_size))
    return y, idx
