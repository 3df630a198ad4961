"""Non-maximum suppression on the GPU with CuPy: the same function and signature as
``reference/nms.py`` (its docstring states the rule).

The greedy walk is sequential, but its expensive part is not: which later box each box would
suppress does not depend on what was kept. So, with the boxes in score order:

1. a kernel computes, for every box ``i`` and every word of 64 later boxes, a bitmask
   ``mask[i, word]`` whose bit ``b`` says ``IoU(i, 64 * word + b) > iou_threshold`` (only for
   boxes after ``i``): one thread per (box, word), N * ceil(N / 64) threads;
2. the host walks the boxes once: box ``i`` is kept unless its bit is set in ``removed``, and a
   kept box ORs its row into ``removed``.

The IoU is computed in the boxes' dtype and compared in double precision, as the other rungs.
"""
from __future__ import annotations

import numpy as np

from tinyvision.kernels.compat import cupy
from tinyvision.kernels.gpu.pooling import launch
from tinyvision.kernels.reference.nms import score_order

__all__ = ["nms"]  # the ladder: what tinyvision.kernels.dispatch asks for

_SOURCE = r"""
template<typename T>
__global__ void nms_mask(const T* boxes, unsigned long long* mask, long long n, int words, double threshold) {
    long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (t >= n * words) return;
    long long i = t / words; int word = t % words;
    const T* a = boxes + 4 * i;
    T area_a = (a[2] - a[0]) * (a[3] - a[1]);
    unsigned long long bits = 0;
    for (int b = 0; b < 64; ++b) {
        long long j = (long long)word * 64 + b;
        if (j <= i || j >= n) continue;
        const T* c = boxes + 4 * j;
        T w = max(min(a[2], c[2]) - max(a[0], c[0]), (T)0);
        T h = max(min(a[3], c[3]) - max(a[1], c[1]), (T)0);
        T inter = w * h;
        T iou = inter / (area_a + (c[2] - c[0]) * (c[3] - c[1]) - inter);
        if ((double)iou > threshold) bits |= 1ULL << b;
    }
    mask[t] = bits;
}
"""
_NAMES = ("nms_mask",)


def nms(boxes, scores, iou_threshold: float):
    """Greedy NMS. boxes (N, 4), scores (N,) CuPy arrays -> kept indices (K,) int64 on the GPU."""
    n = len(boxes)
    if n == 0:
        return cupy.zeros(0, dtype=cupy.int64)
    order = cupy.asarray(score_order(cupy.asnumpy(scores)))      # the same stable tie rule as the CPU
    sorted_boxes = cupy.ascontiguousarray(boxes[order])
    words = (n + 63) // 64
    mask = cupy.empty((n, words), dtype=cupy.uint64)
    launch(_SOURCE, _NAMES, "nms_mask", boxes.dtype, n * words, sorted_boxes, mask, np.int64(n),
           np.int32(words), np.float64(iou_threshold))
    mask = cupy.asnumpy(mask)
    removed = np.zeros(words, dtype=np.uint64)
    keep = []
    for i in range(n):
        if not (int(removed[i // 64]) >> (i % 64)) & 1:
            keep.append(i)
            removed |= mask[i]
    return order[cupy.asarray(np.asarray(keep, dtype=np.int64))]
