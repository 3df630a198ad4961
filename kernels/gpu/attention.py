"""Scaled dot-product attention on the GPU: cuBLAS batched matmuls (``cupy.matmul``) and a
fused softmax kernel, with the same functions and signatures as ``reference/attention.py``.

The softmax kernels give one warp (32 threads) to each score row: the lanes stride over the
keys, and the row max and row sum are combined with warp shuffles, so a row is read from
global memory once for the max, once for exp-and-sum and once to normalise.
"""
from __future__ import annotations

import numpy as np

from tinyvision.kernels.compat import cupy
from tinyvision.kernels.gpu.pooling import i32, launch

# The ladder: what every rung of this op defines with one signature and kernels/dispatch.py
# reaches by name (tests/test_kernels_ladder.py checks that the rungs agree).
__all__ = ["attention_forward", "attention_backward"]

_SOURCE = r"""
template<typename T> __device__ __forceinline__ T warp_max(T v) {
    for (int off = 16; off > 0; off >>= 1) { T o = __shfl_xor_sync(0xffffffff, v, off); v = o > v ? o : v; }
    return v;
}
template<typename T> __device__ __forceinline__ T warp_sum(T v) {
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffff, v, off);
    return v;
}

// In place: row r of s (R, S) <- softmax(scale * row) over keys j < n (n = r % L + 1 if causal);
// keys j >= n and rows with every key at -inf become 0.
template<typename T>
__global__ void softmax_rows(T* s, long long R, int S, int L, T scale, int causal) {
    long long r = (blockIdx.x * (long long)blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x % 32;
    if (r >= R) return;  // the whole warp shares r, so the shuffles below stay converged
    T* row = s + r * S;
    int n = causal ? min(S, (int)(r % L) + 1) : S;
    T m = neg_inf<T>();
    for (int j = lane; j < n; j += 32) { T v = row[j] * scale; m = v > m ? v : m; }
    m = warp_max(m);
    if (m == neg_inf<T>()) n = 0;
    T total = 0;
    for (int j = lane; j < n; j += 32) { T e = exp(row[j] * scale - m); row[j] = e; total += e; }
    total = warp_sum(total);
    for (int j = lane; j < S; j += 32) row[j] = j < n ? row[j] / total : (T)0;
}

// In place: dp <- p * (dp - sum(dp * p)) row by row.
template<typename T>
__global__ void softmax_backward_rows(const T* p, T* dp, long long R, int S) {
    long long r = (blockIdx.x * (long long)blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x % 32;
    if (r >= R) return;
    const T* pr = p + r * S; T* dr = dp + r * S;
    T dot = 0;
    for (int j = lane; j < S; j += 32) dot += dr[j] * pr[j];
    dot = warp_sum(dot);
    for (int j = lane; j < S; j += 32) dr[j] = pr[j] * (dr[j] - dot);
}
"""
_NAMES = ("softmax_rows", "softmax_backward_rows")


def attention_forward(q, k, v, bias, scale: float, is_causal: bool, dropout):
    """See reference.attention.attention_forward."""
    scores = cupy.matmul(q, k.swapaxes(-1, -2))
    if bias is not None:  # the bias is added after scaling, so scale first and softmax with 1
        scores = cupy.ascontiguousarray(scores * scores.dtype.type(scale) + bias.astype(scores.dtype))
        scale = 1.0
    R, S = scores.size // scores.shape[-1], scores.shape[-1]
    launch(_SOURCE, _NAMES, "softmax_rows", scores.dtype, 32 * R, scores, np.int64(R), *i32(S, q.shape[-2]),
           scores.dtype.type(scale), *i32(is_causal))
    kept = scores if dropout is None else scores * dropout
    return cupy.matmul(kept, v), scores


def attention_backward(grad, q, k, v, probs, scale: float, dropout):
    """See reference.attention.attention_backward."""
    kept = probs if dropout is None else probs * dropout
    dv = cupy.matmul(kept.swapaxes(-1, -2), grad)
    dscores = cupy.matmul(grad, v.swapaxes(-1, -2))
    if dropout is not None:
        dscores *= dropout
    R, S = probs.size // probs.shape[-1], probs.shape[-1]
    launch(_SOURCE, _NAMES, "softmax_backward_rows", probs.dtype, 32 * R, probs, dscores, np.int64(R), *i32(S))
    c = dscores.dtype.type(scale)
    return cupy.matmul(dscores, k) * c, cupy.matmul(dscores.swapaxes(-1, -2), q) * c, dv, dscores
