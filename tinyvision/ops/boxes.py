"""Box operations with torchvision.ops's names, signatures and conventions.

Boxes are float tensors of shape ``(..., 4)`` in ``(x1, y1, x2, y2)`` form ("xyxy") with
``x1 <= x2`` and ``y1 <= y2``, in pixels. Everything here is built from differentiable tensor
ops (gradients flow into the coordinates, as in torchvision), except ``nms``, ``batched_nms``,
``remove_small_boxes`` and ``masks_to_boxes``, which return indices or read masks.

The overlap measures, for boxes A and B with C the smallest box enclosing both:

    IoU  = |A n B| / |A u B|                                        in [0, 1]
    GIoU = IoU - (|C| - |A u B|) / |C|                              in [-1, 1] (Rezatofighi 2019)
    DIoU = IoU - d^2 / c^2       d: distance of the centres, c: the diagonal of C (Zheng 2020)
    CIoU = DIoU - alpha * v,     v = 4 / pi^2 (atan(w_A / h_A) - atan(w_B / h_B))^2,
                                 alpha = v / (1 - IoU + v), held constant in the backward

GIoU/DIoU/CIoU still move (and give gradients) when the boxes do not overlap, where IoU is 0.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tinyvision import functional as F
from tinyvision.autograd.function import Context, Function, no_grad
from tinyvision.autograd.tensor import Tensor
from tinyvision.kernels.compat import array_module
from tinyvision.kernels.dispatch import kernel
from tinyvision.ops._checks import check_boxes, check_tensor

FORMATS = ("xyxy", "xywh", "cxcywh")


# --------------------------------------------------------------------------- conversions

def _unbind(boxes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    return boxes[..., 0], boxes[..., 1], boxes[..., 2], boxes[..., 3]


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Convert ``(..., 4)`` boxes between 'xyxy' (corners), 'xywh' (top-left corner, width,
    height) and 'cxcywh' (centre, width, height). Differentiable."""
    for name, fmt in (("in_fmt", in_fmt), ("out_fmt", out_fmt)):
        if fmt not in FORMATS:
            raise ValueError(f"box_convert: {name} must be one of {FORMATS}, got {fmt!r}")
    boxes = check_boxes("box_convert", "boxes", boxes, ordered=False)
    if in_fmt == out_fmt:
        return boxes.clone()
    a, b, c, d = _unbind(boxes)
    if in_fmt == "xywh":                       # everything goes through xyxy
        a, b, c, d = a, b, a + c, b + d
    elif in_fmt == "cxcywh":
        a, b, c, d = a - 0.5 * c, b - 0.5 * d, a + 0.5 * c, b + 0.5 * d
    if out_fmt == "xywh":
        a, b, c, d = a, b, c - a, d - b
    elif out_fmt == "cxcywh":
        a, b, c, d = (a + c) / 2, (b + d) / 2, c - a, d - b
    return F.stack((a, b, c, d), dim=-1)


def box_area(boxes: Tensor, fmt: str = "xyxy") -> Tensor:
    """Area of each box: ``(x2 - x1) * (y2 - y1)``, or ``w * h`` for 'xywh' / 'cxcywh'.
    (..., 4) -> (...)."""
    if fmt not in FORMATS:
        raise ValueError(f"box_area: fmt must be one of {FORMATS}, got {fmt!r}")
    boxes = check_boxes("box_area", "boxes", boxes, ordered=fmt == "xyxy")
    if fmt == "xyxy":
        return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    return boxes[..., 2] * boxes[..., 3]


# --------------------------------------------------------------------------- pairwise overlaps

def _pairs(op: str, boxes1: Tensor, boxes2: Tensor) -> tuple[Tensor, Tensor]:
    boxes1 = check_boxes(op, "boxes1", boxes1)
    boxes2 = check_boxes(op, "boxes2", boxes2)
    if boxes1.ndim < 2 or boxes2.ndim < 2 or boxes1.shape[:-2] != boxes2.shape[:-2]:
        raise ValueError(f"{op}: boxes1 and boxes2 must be (..., N, 4) and (..., M, 4) with the same leading "
                         f"dims, got {tuple(boxes1.shape)} and {tuple(boxes2.shape)}")
    return boxes1, boxes2


def _inter_union(boxes1: Tensor, boxes2: Tensor) -> tuple[Tensor, Tensor]:
    """|A n B| and |A u B| for every pair: (..., N, M) each."""
    area1 = (boxes1[..., 2] - boxes1[..., 0]) * (boxes1[..., 3] - boxes1[..., 1])
    area2 = (boxes2[..., 2] - boxes2[..., 0]) * (boxes2[..., 3] - boxes2[..., 1])
    lt = F.maximum(boxes1[..., :, None, :2], boxes2[..., None, :, :2])    # (..., N, M, 2)
    rb = F.minimum(boxes1[..., :, None, 2:], boxes2[..., None, :, 2:])
    wh = (rb - lt).clamp(min=0)                                          # no overlap: 0, not negative
    inter = wh[..., 0] * wh[..., 1]
    return inter, area1[..., :, None] + area2[..., None, :] - inter


def _enclosing_wh(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Width and height of the smallest box enclosing each pair: (..., N, M, 2)."""
    lt = F.minimum(boxes1[..., :, None, :2], boxes2[..., None, :, :2])
    rb = F.maximum(boxes1[..., :, None, 2:], boxes2[..., None, :, 2:])
    return (rb - lt).clamp(min=0)


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Intersection over union of every pair. (..., N, 4), (..., M, 4) -> (..., N, M)."""
    boxes1, boxes2 = _pairs("box_iou", boxes1, boxes2)
    inter, union = _inter_union(boxes1, boxes2)
    return inter / union


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """GIoU = IoU - (|C| - |A u B|) / |C| of every pair. (..., N, 4), (..., M, 4) -> (..., N, M)."""
    boxes1, boxes2 = _pairs("generalized_box_iou", boxes1, boxes2)
    inter, union = _inter_union(boxes1, boxes2)
    wh = _enclosing_wh(boxes1, boxes2)
    enclosing = wh[..., 0] * wh[..., 1]
    return inter / union - (enclosing - union) / enclosing


def _diou_iou(boxes1: Tensor, boxes2: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """(DIoU, IoU) of every pair; ``eps`` keeps c^2 away from 0."""
    inter, union = _inter_union(boxes1, boxes2)
    iou = inter / union
    wh = _enclosing_wh(boxes1, boxes2)
    diagonal2 = wh[..., 0] ** 2 + wh[..., 1] ** 2 + eps
    cx1, cy1 = (boxes1[..., 0] + boxes1[..., 2]) / 2, (boxes1[..., 1] + boxes1[..., 3]) / 2
    cx2, cy2 = (boxes2[..., 0] + boxes2[..., 2]) / 2, (boxes2[..., 1] + boxes2[..., 3]) / 2
    centres2 = (cx1[..., :, None] - cx2[..., None, :]) ** 2 + (cy1[..., :, None] - cy2[..., None, :]) ** 2
    return iou - centres2 / diagonal2, iou


def distance_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """DIoU = IoU - d^2 / c^2 of every pair. (..., N, 4), (..., M, 4) -> (..., N, M)."""
    boxes1, boxes2 = _pairs("distance_box_iou", boxes1, boxes2)
    return _diou_iou(boxes1, boxes2, eps)[0]


class Atan(Function):
    """arctan(x); d/dx arctan(x) = 1 / (1 + x^2). (Only CIoU needs it.)"""

    @staticmethod
    def forward(ctx: Context, x):
        ctx.save_for_backward(x)
        return array_module(x).arctan(x)

    @staticmethod
    def backward(ctx: Context, grad):
        (x,) = ctx.saved_tensors
        return grad / (1 + x * x)


def aspect_term(w1: Tensor, h1: Tensor, w2: Tensor, h2: Tensor) -> Tensor:
    """CIoU's v = 4 / pi^2 * (atan(w1 / h1) - atan(w2 / h2))^2: 0 when the aspect ratios agree."""
    return (4 / np.pi ** 2) * (Atan.apply(w1 / h1) - Atan.apply(w2 / h2)) ** 2


def ciou_alpha(v: Tensor, iou: Tensor, eps: float) -> Tensor:
    """alpha = v / (1 - IoU + v + eps), a constant weight (no gradient), as in the paper."""
    with no_grad():
        return v.detach() / (1 - iou.detach() + v.detach() + eps)


def complete_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """CIoU = DIoU - alpha * v of every pair. (..., N, 4), (..., M, 4) -> (..., N, M)."""
    boxes1, boxes2 = _pairs("complete_box_iou", boxes1, boxes2)
    diou, iou = _diou_iou(boxes1, boxes2, eps)
    w1, h1 = boxes1[..., :, None, 2] - boxes1[..., :, None, 0], boxes1[..., :, None, 3] - boxes1[..., :, None, 1]
    w2, h2 = boxes2[..., None, :, 2] - boxes2[..., None, :, 0], boxes2[..., None, :, 3] - boxes2[..., None, :, 1]
    v = aspect_term(w1, h1, w2, h2)
    return diou - ciou_alpha(v, iou, eps) * v


# --------------------------------------------------------------------------- clean-up

def clip_boxes_to_image(boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """Clamp x to [0, width] and y to [0, height]; ``size`` is (height, width). (..., 4) -> (..., 4)."""
    boxes = check_boxes("clip_boxes_to_image", "boxes", boxes, ordered=False)
    if len(tuple(size)) != 2:
        raise ValueError(f"clip_boxes_to_image: size must be (height, width), got {size!r}")
    height, width = size
    x1, y1, x2, y2 = _unbind(boxes)
    return F.stack((x1.clamp(0, width), y1.clamp(0, height), x2.clamp(0, width), y2.clamp(0, height)), dim=-1)


def remove_small_boxes(boxes: Tensor, min_size: float) -> Tensor:
    """Indices (int64) of the boxes whose width and height are both >= ``min_size``."""
    boxes = check_boxes("remove_small_boxes", "boxes", boxes, ordered=False)
    data = boxes.data
    keep = (data[..., 2] - data[..., 0] >= min_size) & (data[..., 3] - data[..., 1] >= min_size)
    return Tensor(array_module(data).nonzero(keep.reshape(-1))[0].astype(np.int64))


def masks_to_boxes(masks: Tensor) -> Tensor:
    """The tight box around each mask: (N, H, W) -> (N, 4) float32, ``x2``/``y2`` being the last
    column/row of the mask (inclusive, torchvision's convention); an empty mask gives zeros."""
    masks = check_tensor("masks_to_boxes", "masks", masks)
    if masks.ndim != 3:
        raise ValueError(f"masks_to_boxes: masks must be (N, H, W), got shape {tuple(masks.shape)}")
    m = masks.data != 0
    xp = array_module(m)
    rows, cols = m.any(axis=2), m.any(axis=1)                   # (N, H), (N, W)
    H, W = m.shape[1:]
    y1, x1 = rows.argmax(axis=1), cols.argmax(axis=1)
    y2, x2 = H - 1 - rows[:, ::-1].argmax(axis=1), W - 1 - cols[:, ::-1].argmax(axis=1)
    boxes = xp.stack([x1, y1, x2, y2], axis=1).astype(np.float32)
    boxes[~rows.any(axis=1)] = 0
    return Tensor(boxes)


# --------------------------------------------------------------------------- non-maximum suppression

def _nms_args(op: str, boxes: Tensor, scores: Tensor) -> tuple[Any, Any]:
    boxes = check_boxes(op, "boxes", boxes, ndim=2)
    scores = check_tensor(op, "scores", scores)
    if scores.shape != (boxes.shape[0],):
        raise ValueError(f"{op}: scores must have shape (N,) = ({boxes.shape[0]},) to match boxes "
                         f"{tuple(boxes.shape)}, got {tuple(scores.shape)}")
    if boxes.device != scores.device:
        raise ValueError(f"{op}: boxes are on {boxes.device} but scores on {scores.device}")
    s = scores.data
    if s.size and bool(array_module(s).isnan(s).any()):
        raise ValueError(f"{op}: scores contain NaN")
    return boxes.data, s


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression, exactly torchvision's: the indices (int64) of the kept
    boxes by decreasing score (ties: lower index first); a box is dropped when its IoU with a
    kept, higher-scoring box is greater than ``iou_threshold``. boxes (N, 4), scores (N,)."""
    b, s = _nms_args("nms", boxes, scores)
    return Tensor(kernel("nms", "nms", b)(b, s, float(iou_threshold)))


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS within each category ``idxs`` (boxes of different categories never suppress each
    other); the kept indices (int64) by decreasing score, ties by lower index.

    torchvision shifts each category's boxes far apart and runs one NMS; we run one NMS per
    category on the boxes as they are, which is the same selection without the shift's rounding.
    """
    b, s = _nms_args("batched_nms", boxes, scores)
    idxs = check_tensor("batched_nms", "idxs", idxs)
    if idxs.shape != (b.shape[0],):
        raise ValueError(f"batched_nms: idxs must have shape ({b.shape[0]},) to match boxes, got {tuple(idxs.shape)}")
    xp = array_module(b)
    groups = idxs.data
    kept = [xp.zeros(0, dtype=np.int64)]
    run = kernel("nms", "nms", b)
    for category in xp.unique(groups).tolist():
        members = xp.nonzero(groups == category)[0]
        kept.append(members[run(b[members], s[members], float(iou_threshold))])
    keep = xp.sort(xp.concatenate(kept))
    return Tensor(keep[xp.argsort(-s[keep], kind="stable")])
