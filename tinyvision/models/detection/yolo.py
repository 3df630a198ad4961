"""A YOLO-style single-grid detector (Redmon, Divvala, Girshick, Farhadi 2016: "You Only Look
Once"), the simplest one-stage model: no anchors, no proposals, no pyramid.

The image is divided into an S x S grid. The cell that contains an object's centre is
*responsible* for it. Every cell predicts B boxes, each as (x, y, sqrt(w), sqrt(h), confidence),
and one set of class probabilities (softmax), all in one forward pass:

    box centre  = ((col + x) / S * W, (row + y) / S * H)      x, y = sigmoid outputs in the cell
    box size    = (sqrt_w^2 W, sqrt_h^2 H)                     sqrt_w, sqrt_h = sigmoid outputs
    score       = confidence * P(class | object)

The loss is YOLOv1's sum of squares over the grid, divided by the number of images: for the
responsible predictor (of the cell's B, the one whose box overlaps the truth most) 5 x the
squared error of x, y, sqrt w, sqrt h (square roots, so that an error counts more in a small
box) and the squared error of the confidence against the IoU it reaches; 0.5 x the squared
confidence of every other predictor (no object); and the squared error of the class
probabilities in cells that hold an object. Detections: score > 0.05, per-class NMS at 0.5.

Here the grid comes from a ResNet-18 trunk cut after layer2 (stride 8: an 8 x 8 grid on 64 x 64
images), a 3x3 conv + ReLU and a 1x1 conv to B 5 + num_classes channels per cell. ``model(images)``
and ``model(images, targets)`` behave as torchvision's detectors (detections / loss dict).
"""
from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from tinyvision import functional as F
from tinyvision.autograd.function import no_grad
from tinyvision.autograd.tensor import Tensor
from tinyvision.kernels.compat import array_module
from tinyvision.models.detection._utils import raw
from tinyvision.models._utils import IntermediateLayerGetter
from tinyvision.models.detection.retinanet import check_targets
from tinyvision.models.registry import register_model
from tinyvision.models.resnet import BasicBlock, ResNet
from tinyvision.nn import Conv2d, Module, ReLU, Sequential
from tinyvision.ops import batched_nms, box_iou

LAMBDA_COORD, LAMBDA_NOOBJ = 5.0, 0.5


def assign_targets(boxes_raw: Any, targets: list[dict], S: int, image_size: tuple[int, int], num_classes: int):
    """The training targets of every predictor (constants: no gradient flows into them).

    boxes_raw (N, S, S, B, 5) sigmoid outputs. Per truth, the cell holding its centre answers for
    it (one truth per cell, as YOLOv1), and of that cell's B predictors the one whose box overlaps
    the truth most; its confidence target is that IoU. Returns (responsible (N, S, S, B) bool,
    xywh targets (N, S, S, B, 4), confidence targets (N, S, S, B), has_object (N, S, S) bool,
    one-hot classes (N, S, S, C))."""
    N, B = boxes_raw.shape[0], boxes_raw.shape[3]
    H, W = image_size
    xp = array_module(boxes_raw)
    dtype = boxes_raw.dtype
    responsible = xp.zeros((N, S, S, B), dtype=bool)
    target_xywh = xp.zeros((N, S, S, B, 4), dtype=dtype)
    target_conf = xp.zeros((N, S, S, B), dtype=dtype)
    has_object = xp.zeros((N, S, S), dtype=bool)
    target_class = xp.zeros((N, S, S, num_classes), dtype=dtype)
    decoded = decode_boxes(boxes_raw, S, image_size)                     # (N, S, S, B, 4) xyxy
    for i, t in enumerate(targets):
        for box, label in zip(raw(t["boxes"]).tolist(), raw(t["labels"]).tolist()):
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            col, row = min(int(cx / W * S), S - 1), min(int(cy / H * S), S - 1)
            if has_object[i, row, col]:
                continue
            ious = box_iou(Tensor(decoded[i, row, col]), Tensor(xp.asarray([box], dtype=dtype))).data[:, 0]
            b = int(ious.argmax())
            responsible[i, row, col, b] = True
            target_conf[i, row, col, b] = ious[b]
            target_xywh[i, row, col, b] = [cx / W * S - col, cy / H * S - row,
                                           np.sqrt((box[2] - box[0]) / W), np.sqrt((box[3] - box[1]) / H)]
            has_object[i, row, col] = True
            target_class[i, row, col, int(label)] = 1.0
    return responsible, target_xywh, target_conf, has_object, target_class


def grid_loss(pred: Tensor, assignment: tuple, B: int) -> dict[str, Tensor]:
    """YOLOv1's sums of squares for raw outputs pred (N, S, S, B 5 + C) against fixed targets."""
    responsible, target_xywh, target_conf, has_object, target_class = assignment
    N = pred.shape[0]
    boxes_raw = F.sigmoid(pred[..., :5 * B]).reshape(N, pred.shape[1], pred.shape[2], B, 5)
    class_prob = F.softmax(pred[..., 5 * B:], dim=-1)
    r = Tensor(responsible.astype(pred.dtype))
    coord = (((boxes_raw[..., :4] - Tensor(target_xywh)) ** 2).sum(dim=-1) * r).sum() * LAMBDA_COORD
    conf = boxes_raw[..., 4]
    confidence = (((conf - Tensor(target_conf)) ** 2) * r).sum() + LAMBDA_NOOBJ * ((conf ** 2) * (1 - r)).sum()
    classification = (((class_prob - Tensor(target_class)) ** 2).sum(dim=-1)
                      * Tensor(has_object.astype(pred.dtype))).sum()
    return {"coord": coord / N, "confidence": confidence / N, "classification": classification / N}


def yolo_loss(pred: Tensor, targets: list[dict], S: int, B: int, image_size: tuple[int, int]) -> dict[str, Tensor]:
    """YOLOv1's loss. pred (N, S, S, B * 5 + C) raw outputs; targets per image: boxes (n, 4) xyxy
    in pixels, labels (n,). Returns {"coord", "confidence", "classification"}, each / N."""
    N, C = pred.shape[0], pred.shape[-1] - 5 * B
    xp = array_module(pred.data)
    boxes_raw = (1 / (1 + xp.exp(-pred.data[..., :5 * B]))).reshape(N, S, S, B, 5)
    return grid_loss(pred, assign_targets(boxes_raw, targets, S, image_size, C), B)


def decode_boxes(boxes_raw: Any, S: int, image_size: tuple[int, int]) -> Any:
    """(..., S, S, B, >= 4) sigmoid outputs (x, y, sqrt w, sqrt h) -> xyxy pixel boxes."""
    H, W = image_size
    xp = array_module(boxes_raw)
    rows = xp.arange(S, dtype=boxes_raw.dtype)[:, None, None]
    cols = xp.arange(S, dtype=boxes_raw.dtype)[None, :, None]
    cx = (cols + boxes_raw[..., 0]) / S * W
    cy = (rows + boxes_raw[..., 1]) / S * H
    w, h = boxes_raw[..., 2] ** 2 * W, boxes_raw[..., 3] ** 2 * H
    return xp.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)


class YOLOv1(Module):
    """The grid detector above; ``num_classes`` defaults to the paper's 20 (PASCAL VOC)."""

    def __init__(self, num_classes: int = 20, grid_boxes: int = 2, image_mean: list | None = None,
                 image_std: list | None = None, score_thresh: float = 0.05, nms_thresh: float = 0.5,
                 detections_per_img: int = 100) -> None:
        super().__init__()
        self.body = IntermediateLayerGetter(ResNet(BasicBlock, [2, 2, 2, 2]), {"layer2": "0"})   # stride 8
        self.head = Sequential(Conv2d(128, 256, 3, padding=1), ReLU(), Conv2d(256, grid_boxes * 5 + num_classes, 1))
        self.num_classes, self.B = num_classes, grid_boxes
        self.image_mean, self.image_std = image_mean or [0.485, 0.456, 0.406], image_std or [0.229, 0.224, 0.225]
        self.score_thresh, self.nms_thresh, self.detections_per_img = score_thresh, nms_thresh, detections_per_img

    def grid(self, images: Tensor) -> Tensor:
        """(N, 3, H, W) -> raw predictions (N, S, S, B 5 + C), S = H / 8."""
        xp = array_module(images.data)
        mean = Tensor(xp.asarray(self.image_mean, dtype=images.dtype)[:, None, None])
        std = Tensor(xp.asarray(self.image_std, dtype=images.dtype)[:, None, None])
        return self.head(self.body((images - mean) / std)["0"]).permute(0, 2, 3, 1)

    def forward(self, images: Tensor | list[Tensor], targets: list[dict] | None = None):
        if not isinstance(images, Tensor):
            images = F.stack(list(images), dim=0)
        if images.shape[-1] != images.shape[-2] or images.shape[-1] % 8:
            raise ValueError(f"YOLOv1: images must be square with a side divisible by 8, got {tuple(images.shape)}")
        pred = self.grid(images)
        S, size = pred.shape[1], tuple(images.shape[-2:])
        if self.training:
            check_targets(targets, images.shape[0])
            return yolo_loss(pred, targets, S, self.B, size)
        with no_grad():
            return self.postprocess(pred.data, S, size)

    def postprocess(self, pred: Any, S: int, size: tuple[int, int]) -> list[dict]:
        xp = array_module(pred)
        N = pred.shape[0]
        boxes_raw = (1 / (1 + xp.exp(-pred[..., :5 * self.B]))).reshape(N, S, S, self.B, 5)
        logits = pred[..., 5 * self.B:]
        e = xp.exp(logits - logits.max(axis=-1, keepdims=True))
        class_prob = e / e.sum(axis=-1, keepdims=True)
        boxes = decode_boxes(boxes_raw, S, size)
        out = []
        for i in range(N):
            scores = boxes_raw[i, ..., 4][..., None] * class_prob[i][:, :, None, :]      # (S, S, B, C)
            flat = scores.reshape(-1)
            keep = xp.nonzero(flat > self.score_thresh)[0]
            labels = keep % self.num_classes
            b = xp.clip(boxes[i].reshape(-1, 4)[keep // self.num_classes], 0, [size[1], size[0], size[1], size[0]])
            s = flat[keep]
            k = batched_nms(Tensor(b), Tensor(s), Tensor(labels), self.nms_thresh).data[:self.detections_per_img]
            out.append({"boxes": Tensor(b[k]), "scores": Tensor(s[k]), "labels": Tensor(labels[k].astype(np.int64))})
        return out


yolo_resnet18 = register_model(partial(YOLOv1), "yolo_resnet18")
