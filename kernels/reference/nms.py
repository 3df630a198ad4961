"""Non-maximum suppression in plain NumPy: the readable specification of every NMS rung.

A detector proposes many overlapping boxes for one object. NMS keeps the best of each cluster:

    order the boxes by score, highest first (ties: the lower index first, a stable sort);
    walk that order; a box that nothing has suppressed yet is KEPT, and it suppresses every
    later box whose IoU with it is greater than ``iou_threshold`` (strictly greater).

This is torchvision's CPU rule exactly, including its arithmetic: the IoU is computed in the
boxes' dtype as ``inter / (area_i + area_j - inter)`` with ``area = (x2 - x1) * (y2 - y1)``, so
that float32 boxes give float32 IoUs and the comparison with the threshold decides the same way.
The result lists the kept indices in that score order (int64); no boxes give an empty result.
Boxes are ``(x1, y1, x2, y2)``, already checked (finite, ``x1 <= x2``, ``y1 <= y2``) by
``tinyvision.ops.nms``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["nms"]  # the ladder: what tinyvision.kernels.dispatch asks for


def score_order(scores: np.ndarray) -> np.ndarray:
    """Indices by descending score, ties by ascending index (a stable sort of ``-scores``).
    Shared by every rung so that all of them break ties alike."""
    return np.argsort(-scores, kind="stable")


def _iou_with(box: np.ndarray, boxes: np.ndarray, areas: np.ndarray, area: np.generic) -> np.ndarray:
    """IoU of one box with each of ``boxes`` (M, 4), in the boxes' dtype."""
    zero = boxes.dtype.type(0)
    w = np.maximum(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), zero)
    h = np.maximum(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), zero)
    inter = w * h
    with np.errstate(invalid="ignore", divide="ignore"):  # two empty boxes: 0 / 0 = NaN, which never suppresses
        return inter / (area + areas - inter)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS. boxes (N, 4), scores (N,) -> kept indices (K,) int64, by descending score."""
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    order = score_order(scores)
    suppressed = np.zeros(len(boxes), dtype=bool)
    keep = []
    for rank, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(i)
        later = order[rank + 1:]
        iou = _iou_with(boxes[i], boxes[later], areas[later], areas[i])
        # compared in float64, as C++ promotes a float IoU to the double threshold
        # (NumPy would round the threshold to float32 instead)
        suppressed[later[iou.astype(np.float64) > iou_threshold]] = True
    return np.asarray(keep, dtype=np.int64)
