"""The Region Proposal Network (Faster R-CNN, Ren, He, Girshick, Sun 2015), torchvision's
``RPNHead`` and ``RegionProposalNetwork`` with its keys (``rpn.head.conv.0.0.weight``, ...).

A small conv net slides over every FPN level and, at each position, scores A = 3 anchors as
"object or not" (one logit each) and regresses 4 offsets per anchor. The proposals are the
decoded anchors: per level the top ``pre_nms_top_n`` by objectness, clipped to the image, tiny
ones dropped, NMS at 0.7 within each level, and the best ``post_nms_top_n`` over all levels. In
training an anchor is positive at IoU >= 0.7 with a truth (or the best for some truth), negative
below 0.3; 256 of them per image (at most half positive) give the losses: binary cross-entropy
on objectness and smooth L1 (beta = 1/9) on the positives' offsets.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tinyvision import functional as F
from tinyvision.autograd.function import no_grad
from tinyvision.autograd.tensor import Tensor
from tinyvision.kernels.compat import array_module
from tinyvision.models.detection._utils import BalancedPositiveNegativeSampler, BoxCoder, Matcher, raw
from tinyvision.models.detection.anchor_utils import AnchorGenerator
from tinyvision.nn import Conv2d, Module, ReLU, Sequential, init
from tinyvision.ops import batched_nms, box_iou, clip_boxes_to_image, remove_small_boxes


class RPNHead(Module):
    """A 3x3 conv + ReLU, then two sibling 1x1 convs: A objectness logits and 4 A box offsets."""

    def __init__(self, in_channels: int, num_anchors: int, conv_depth: int = 1) -> None:
        super().__init__()
        self.conv = Sequential(*[Sequential(Conv2d(in_channels, in_channels, 3, padding=1), ReLU())
                                 for _ in range(conv_depth)])
        self.cls_logits = Conv2d(in_channels, num_anchors, 1)
        self.bbox_pred = Conv2d(in_channels, num_anchors * 4, 1)
        for m in self.modules():
            if isinstance(m, Conv2d):
                init.normal_(m.weight, std=0.01)
                init.constant_(m.bias, 0)

    def forward(self, x: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        logits, boxes = [], []
        for feature in x:
            t = self.conv(feature)
            logits.append(self.cls_logits(t))
            boxes.append(self.bbox_pred(t))
        return logits, boxes


def concat_box_prediction_layers(box_cls: list[Tensor], box_regression: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Per level (N, A C, H, W) and (N, A 4, H, W) -> (N sum HWA, C) and (N sum HWA, 4), in the
    anchors' order (position-major, then anchor)."""
    cls, reg = [], []
    for c, r in zip(box_cls, box_regression):
        N, AC, H, W = c.shape
        A = r.shape[1] // 4
        cls.append(c.view(N, A, AC // A, H, W).permute(0, 3, 4, 1, 2).reshape(N, -1, AC // A))
        reg.append(r.view(N, A, 4, H, W).permute(0, 3, 4, 1, 2).reshape(N, -1, 4))
    box_cls = F.cat(cls, dim=1)
    return box_cls.reshape(-1, box_cls.shape[-1]), F.cat(reg, dim=1).reshape(-1, 4)


class RegionProposalNetwork(Module):
    def __init__(self, anchor_generator: AnchorGenerator, head: Module, fg_iou_thresh: float, bg_iou_thresh: float,
                 batch_size_per_image: int, positive_fraction: float, pre_nms_top_n: dict[str, int],
                 post_nms_top_n: dict[str, int], nms_thresh: float, score_thresh: float = 0.0) -> None:
        super().__init__()
        self.anchor_generator, self.head = anchor_generator, head
        self.box_coder = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
        self.proposal_matcher = Matcher(fg_iou_thresh, bg_iou_thresh, allow_low_quality_matches=True)
        self.fg_bg_sampler = BalancedPositiveNegativeSampler(batch_size_per_image, positive_fraction)
        self._pre_nms_top_n, self._post_nms_top_n = dict(pre_nms_top_n), dict(post_nms_top_n)
        self.nms_thresh, self.score_thresh, self.min_size = nms_thresh, score_thresh, 1e-3

    def pre_nms_top_n(self) -> int:
        return self._pre_nms_top_n["training" if self.training else "testing"]

    def post_nms_top_n(self) -> int:
        return self._post_nms_top_n["training" if self.training else "testing"]

    def assign_targets_to_anchors(self, anchors: list[Tensor], targets: list[dict]) -> tuple[list, list]:
        """Per anchor: label 1 (object), 0 (background), -1 (ignored), and its matched truth box."""
        labels, matched_boxes = [], []
        for anchors_i, target in zip(anchors, targets):
            a, gt = raw(anchors_i), raw(target["boxes"])
            xp = array_module(a)
            if gt.size == 0:
                matched_boxes.append(xp.zeros(a.shape, dtype=a.dtype))
                labels.append(xp.zeros(len(a), dtype=a.dtype))
                continue
            matched = self.proposal_matcher(box_iou(Tensor(gt.astype(a.dtype)), Tensor(a))).data
            matched_boxes.append(gt.astype(a.dtype)[np.maximum(matched, 0)])
            label = (matched >= 0).astype(a.dtype)
            label[matched == Matcher.BELOW_LOW_THRESHOLD] = 0.0
            label[matched == Matcher.BETWEEN_THRESHOLDS] = -1.0
            labels.append(label)
        return labels, matched_boxes

    def filter_proposals(self, proposals: Any, objectness: Any, image_shapes: list,
                         num_anchors_per_level: list[int]) -> tuple[list[Tensor], list[Tensor]]:
        N = proposals.shape[0]
        xp = array_module(objectness)
        objectness = objectness.reshape(N, -1)
        levels = np.concatenate([np.full(n, i, dtype=np.int64) for i, n in enumerate(num_anchors_per_level)])
        bounds = np.cumsum([0] + list(num_anchors_per_level))
        boxes_out, scores_out = [], []
        for i, image_shape in enumerate(image_shapes):
            top = []  # per level, the pre_nms_top_n best anchors (by objectness)
            for a, b in zip(bounds[:-1], bounds[1:]):
                order = xp.argsort(-objectness[i, a:b], kind="stable")[:self.pre_nms_top_n()]
                top.append(order + a)
            top = xp.concatenate(top)
            scores = 1 / (1 + xp.exp(-objectness[i, top]))
            boxes = clip_boxes_to_image(Tensor(proposals[i, top]), image_shape)
            lvl = xp.asarray(levels)[top]
            keep = remove_small_boxes(boxes, self.min_size).data
            boxes, scores, lvl = boxes.data[keep], scores[keep], lvl[keep]
            keep = xp.nonzero(scores >= self.score_thresh)[0]
            boxes, scores, lvl = boxes[keep], scores[keep], lvl[keep]
            keep = batched_nms(Tensor(boxes), Tensor(scores), Tensor(lvl), self.nms_thresh).data[:self.post_nms_top_n()]
            boxes_out.append(Tensor(boxes[keep]))
            scores_out.append(Tensor(scores[keep]))
        return boxes_out, scores_out

    def compute_loss(self, objectness: Tensor, pred_bbox_deltas: Tensor, labels: list, regression_targets: list):
        pos, neg = self.fg_bg_sampler(labels)
        xp = array_module(raw(labels[0]))
        pos = xp.nonzero(xp.concatenate([raw(p) for p in pos]))[0]
        neg = xp.nonzero(xp.concatenate([raw(n) for n in neg]))[0]
        sampled = xp.concatenate([pos, neg])
        labels_all = xp.concatenate(labels)
        targets = xp.concatenate(regression_targets)
        box_loss = F.smooth_l1_loss(pred_bbox_deltas[pos], Tensor(targets[pos]), beta=1 / 9,
                                    reduction="sum") / max(len(sampled), 1)
        objectness_loss = F.binary_cross_entropy_with_logits(objectness.reshape(-1)[sampled], Tensor(labels_all[sampled]))
        return objectness_loss, box_loss

    def forward(self, images, features: dict[str, Tensor], targets: list[dict] | None = None):
        features = list(features.values())
        objectness, deltas = self.head(features)
        anchors = self.anchor_generator(images, features)
        num_anchors_per_level = [o.shape[1] * o.shape[2] * o.shape[3] for o in objectness]
        objectness, deltas = concat_box_prediction_layers(objectness, deltas)
        with no_grad():   # the proposals carry no gradient into the RPN (as torchvision: detached)
            proposals = self.box_coder.decode(deltas.detach(), anchors).data.reshape(len(anchors), -1, 4)
            boxes, scores = self.filter_proposals(proposals, objectness.detach().data, images.image_sizes,
                                                  num_anchors_per_level)
        losses = {}
        if self.training:
            labels, matched = self.assign_targets_to_anchors(anchors, targets)
            regression_targets = [self.box_coder.encode_single(m, a).data for m, a in zip(matched, anchors)]
            loss_objectness, loss_box = self.compute_loss(objectness, deltas, labels, regression_targets)
            losses = {"loss_objectness": loss_objectness, "loss_rpn_box_reg": loss_box}
        return boxes, losses
