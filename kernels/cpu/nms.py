"""Non-maximum suppression on the CPU with Numba: the same function and signature as
``reference/nms.py`` (its docstring states the rule).

One sequential greedy pass (each decision depends on the ones before it, so there is nothing
to run in parallel); what makes it fast is that it is compiled, reads the four coordinates of a
kept box once into registers, and skips suppressed boxes without touching their coordinates.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from tinyvision.kernels.cpu import threading as _threading  # noqa: F401  (one Numba/BLAS thread policy)
from tinyvision.kernels.reference.nms import score_order

__all__ = ["nms"]  # the ladder: what tinyvision.kernels.dispatch asks for


@njit(cache=True, error_model="numpy")  # 0/0 (two empty boxes) is NaN, never suppresses, as in C++
def _greedy(boxes, order, iou_threshold, zero):
    n = order.shape[0]
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    suppressed = np.zeros(boxes.shape[0], dtype=np.bool_)
    keep = np.empty(n, dtype=np.int64)
    kept = 0
    for a in range(n):
        i = order[a]
        if suppressed[i]:
            continue
        keep[kept] = i
        kept += 1
        ix1, iy1, ix2, iy2, iarea = x1[i], y1[i], x2[i], y2[i], areas[i]
        for b in range(a + 1, n):
            j = order[b]
            if suppressed[j]:
                continue
            w = max(min(ix2, x2[j]) - max(ix1, x1[j]), zero)   # in the boxes' dtype, as torchvision
            h = max(min(iy2, y2[j]) - max(iy1, y1[j]), zero)
            inter = w * h
            if inter / (iarea + areas[j] - inter) > iou_threshold:
                suppressed[j] = True
    return keep[:kept]


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS. boxes (N, 4), scores (N,) -> kept indices (K,) int64, by descending score."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    boxes = np.ascontiguousarray(boxes)
    return _greedy(boxes, score_order(scores), float(iou_threshold), boxes.dtype.type(0))
