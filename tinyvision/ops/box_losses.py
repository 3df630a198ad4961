"""IoU-family box regression losses with torchvision.ops's names and signatures.

Each takes two sets of boxes of the same shape ``(..., 4)`` (xyxy), pairs them elementwise (box i
of ``boxes1`` with box i of ``boxes2``), and returns ``1 - measure`` per pair (then 'mean'/'sum'):

    generalized_box_iou_loss   1 - IoU + (|C| - |A u B|) / |C|            (GIoU, DETR's box loss)
    distance_box_iou_loss      1 - IoU + d^2 / c^2                        (DIoU)
    complete_box_iou_loss      1 - IoU + d^2 / c^2 + alpha * v            (CIoU)

(the measures are defined in ``tinyvision/ops/boxes.py``). ``eps`` guards the divisions, as in
torchvision: IoU = inter / (union + eps).
"""
from __future__ import annotations

from tinyvision import functional as F
from tinyvision.autograd.tensor import Tensor
from tinyvision.ops._checks import check_boxes
from tinyvision.ops.boxes import aspect_term, ciou_alpha
from tinyvision.ops.focal_loss import REDUCTIONS, reduce


def _paired(op: str, boxes1: Tensor, boxes2: Tensor, reduction: str):
    boxes1, boxes2 = check_boxes(op, "boxes1", boxes1), check_boxes(op, "boxes2", boxes2)
    if tuple(boxes1.shape) != tuple(boxes2.shape):
        raise ValueError(f"{op}: boxes1 {tuple(boxes1.shape)} and boxes2 {tuple(boxes2.shape)} must have the same "
                         "shape (the loss pairs them elementwise)")
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return [boxes1[..., i] for i in range(4)], [boxes2[..., i] for i in range(4)]


def _inter_union(a, b):
    """Intersection and union of paired boxes; a pair that only touches has intersection 0 and
    no gradient through it (torchvision masks it)."""
    (x1, y1, x2, y2), (x1g, y1g, x2g, y2g) = a, b
    ix1, iy1, ix2, iy2 = F.maximum(x1, x1g), F.maximum(y1, y1g), F.minimum(x2, x2g), F.minimum(y2, y2g)
    overlap = (iy2 > iy1) & (ix2 > ix1)
    inter = F.where(overlap.data, (ix2 - ix1) * (iy2 - iy1), 0.0)
    union = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - inter
    return inter, union


def _enclosing(a, b):
    (x1, y1, x2, y2), (x1g, y1g, x2g, y2g) = a, b
    return F.minimum(x1, x1g), F.minimum(y1, y1g), F.maximum(x2, x2g), F.maximum(y2, y2g)


def generalized_box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    """1 - GIoU of each pair of boxes. (..., 4), (..., 4) -> (...) (or a scalar)."""
    op = "generalized_box_iou_loss"
    a, b = _paired(op, boxes1, boxes2, reduction)
    inter, union = _inter_union(a, b)
    xc1, yc1, xc2, yc2 = _enclosing(a, b)
    area_c = (xc2 - xc1) * (yc2 - yc1)
    giou = inter / (union + eps) - (area_c - union) / (area_c + eps)
    return reduce(op, 1 - giou, reduction)


def _diou_loss(a, b, eps: float):
    inter, union = _inter_union(a, b)
    iou = inter / (union + eps)
    xc1, yc1, xc2, yc2 = _enclosing(a, b)
    diagonal2 = (xc2 - xc1) ** 2 + (yc2 - yc1) ** 2 + eps
    (x1, y1, x2, y2), (x1g, y1g, x2g, y2g) = a, b
    centres2 = ((x2 + x1) / 2 - (x1g + x2g) / 2) ** 2 + ((y2 + y1) / 2 - (y1g + y2g) / 2) ** 2
    return 1 - iou + centres2 / diagonal2, iou


def distance_box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    """1 - DIoU of each pair of boxes. (..., 4), (..., 4) -> (...) (or a scalar)."""
    op = "distance_box_iou_loss"
    a, b = _paired(op, boxes1, boxes2, reduction)
    return reduce(op, _diou_loss(a, b, eps)[0], reduction)


def complete_box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    """1 - CIoU of each pair of boxes. (..., 4), (..., 4) -> (...) (or a scalar).
    As torchvision, the DIoU part uses eps = 1e-7 whatever ``eps`` is; ``eps`` guards alpha."""
    op = "complete_box_iou_loss"
    a, b = _paired(op, boxes1, boxes2, reduction)
    diou_loss, iou = _diou_loss(a, b, 1e-7)
    (x1, y1, x2, y2), (x1g, y1g, x2g, y2g) = a, b
    v = aspect_term(x2g - x1g, y2g - y1g, x2 - x1, y2 - y1)
    return reduce(op, diou_loss + ciou_alpha(v, iou, eps) * v, reduction)
