"""The second stage of Faster / Mask R-CNN, torchvision's ``RoIHeads`` with its keys
(``roi_heads.box_head.fc6.weight``, ``roi_heads.box_predictor.cls_score.weight``,
``roi_heads.mask_head.0.0.weight``, ``roi_heads.mask_predictor.conv5_mask.weight``, ...).

Each proposal is cut out of the pyramid with MultiScaleRoIAlign (7x7), flattened through two
1024-wide fully connected layers, and classified (softmax over the classes, background = 0) with
per-class box offsets (weights 10, 10, 5, 5). Training: the truth boxes join the proposals, a
proposal is foreground at IoU >= 0.5 with a truth, 512 per image (a quarter foreground) give
cross-entropy and smooth L1 (beta = 1/9) losses. Inference: per class, score > 0.05, NMS at 0.5,
the best 100. Mask R-CNN adds a branch on 14x14 RoIAlign features: four 3x3 convs, a 2x2
transposed conv to 28x28 and one mask logit map per class; its loss is the binary cross-entropy
of the true class's map against the truth mask cut out by RoIAlign at 28x28.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tinyvision import functional as F
from tinyvision.autograd.tensor import Tensor
from tinyvision.kernels.compat import array_module
from tinyvision.models.detection._utils import BalancedPositiveNegativeSampler, BoxCoder, Matcher, raw
from tinyvision.nn import Module
from tinyvision.ops import batched_nms, box_iou, clip_boxes_to_image, remove_small_boxes, roi_align


def fastrcnn_loss(class_logits: Tensor, box_regression: Tensor, labels: list, regression_targets: list):
    """Cross-entropy over all sampled proposals; smooth L1 of the true class's offsets on the
    foreground ones, summed and divided by the number of sampled proposals."""
    xp = array_module(raw(labels[0]))
    labels = xp.concatenate([raw(l) for l in labels])
    targets = xp.concatenate([raw(t) for t in regression_targets])
    classification = F.cross_entropy(class_logits, Tensor(labels))
    pos = xp.nonzero(labels > 0)[0]
    N = class_logits.shape[0]
    boxes = box_regression.reshape(N, box_regression.shape[-1] // 4, 4)
    box_loss = F.smooth_l1_loss(boxes[pos, labels[pos]], Tensor(targets[pos]), beta=1 / 9, reduction="sum")
    return classification, box_loss / max(len(labels), 1)


def maskrcnn_loss(mask_logits: Tensor, proposals: list, gt_masks: list, gt_labels: list, matched_idxs: list) -> Tensor:
    """BCE of each foreground proposal's true-class mask logits (M x M) against its truth mask,
    resampled into the proposal by RoIAlign."""
    M = mask_logits.shape[-1]
    xp = array_module(mask_logits.data)
    labels, targets = [], []
    for masks, boxes, labels_i, idx in zip(gt_masks, proposals, gt_labels, matched_idxs):
        labels.append(raw(labels_i)[idx])
        boxes = raw(boxes)
        rois = xp.concatenate([idx[:, None].astype(boxes.dtype), boxes], axis=1)
        m = Tensor(raw(masks)[:, None].astype(boxes.dtype))
        targets.append(roi_align(m, Tensor(rois), (M, M), 1.0).data[:, 0])
    labels, targets = xp.concatenate(labels), xp.concatenate(targets)
    if targets.size == 0:
        return mask_logits.sum() * 0
    return F.binary_cross_entropy_with_logits(mask_logits[xp.arange(len(labels)), labels], Tensor(targets))


def paste_masks_in_image(masks: Any, boxes: Any, img_shape: tuple[int, int], padding: int = 1) -> Tensor:
    """Each (1, M, M) mask probability map resized (bilinear) into its box and placed in an
    (H, W) image: (D, 1, M, M) -> (D, 1, H, W). The map is first padded by one pixel of zeros
    and the box grown to match, so that the mask fades out at the box's edge (torchvision)."""
    masks, boxes = raw(masks), raw(boxes)
    H, W = img_shape
    xp = array_module(masks)
    out = xp.zeros((len(masks), 1, H, W), dtype=masks.dtype)
    if len(masks) == 0:
        return Tensor(out)
    M = masks.shape[-1]
    scale = float(M + 2 * padding) / M
    padded = xp.pad(masks, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    half_w, half_h = (boxes[:, 2] - boxes[:, 0]) * 0.5 * scale, (boxes[:, 3] - boxes[:, 1]) * 0.5 * scale
    cx, cy = (boxes[:, 2] + boxes[:, 0]) * 0.5, (boxes[:, 3] + boxes[:, 1]) * 0.5
    expanded = xp.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1).astype(np.int64)
    for i, (x0, y0, x1, y1) in enumerate(expanded.tolist()):
        w, h = max(x1 - x0 + 1, 1), max(y1 - y0 + 1, 1)
        resized = F.interpolate(Tensor(padded[i:i + 1]), size=(h, w), mode="bilinear", align_corners=False).data[0, 0]
        ya, yb, xa, xb = max(y0, 0), min(y1 + 1, H), max(x0, 0), min(x1 + 1, W)
        if ya < yb and xa < xb:
            out[i, 0, ya:yb, xa:xb] = resized[ya - y0:yb - y0, xa - x0:xb - x0]
    return Tensor(out)


class RoIHeads(Module):
    def __init__(self, box_roi_pool: Module, box_head: Module, box_predictor: Module, fg_iou_thresh: float,
                 bg_iou_thresh: float, batch_size_per_image: int, positive_fraction: float,
                 bbox_reg_weights: tuple | None, score_thresh: float, nms_thresh: float, detections_per_img: int,
                 mask_roi_pool: Module | None = None, mask_head: Module | None = None,
                 mask_predictor: Module | None = None) -> None:
        super().__init__()
        self.proposal_matcher = Matcher(fg_iou_thresh, bg_iou_thresh, allow_low_quality_matches=False)
        self.fg_bg_sampler = BalancedPositiveNegativeSampler(batch_size_per_image, positive_fraction)
        self.box_coder = BoxCoder(bbox_reg_weights or (10.0, 10.0, 5.0, 5.0))
        self.box_roi_pool, self.box_head, self.box_predictor = box_roi_pool, box_head, box_predictor
        self.score_thresh, self.nms_thresh, self.detections_per_img = score_thresh, nms_thresh, detections_per_img
        self.mask_roi_pool, self.mask_head, self.mask_predictor = mask_roi_pool, mask_head, mask_predictor

    def has_mask(self) -> bool:
        return self.mask_roi_pool is not None

    def select_training_samples(self, proposals: list[Tensor], targets: list[dict]):
        """Add the truths to the proposals, label them (class, 0 background, -1 ignored), sample."""
        dtype = raw(proposals[0]).dtype
        props, matched_idxs, labels = [], [], []
        for p, t in zip(proposals, targets):
            gt = raw(t["boxes"]).astype(dtype)
            xp = array_module(gt)
            p = xp.concatenate([raw(p), gt])
            if gt.size == 0:
                idx = xp.zeros(len(p), dtype=np.int64)
                lab = xp.zeros(len(p), dtype=np.int64)
            else:
                matched = self.proposal_matcher(box_iou(Tensor(gt), Tensor(p))).data
                idx = np.maximum(matched, 0)
                lab = raw(t["labels"])[idx].astype(np.int64)
                lab[matched == Matcher.BELOW_LOW_THRESHOLD] = 0
                lab[matched == Matcher.BETWEEN_THRESHOLDS] = -1
            props.append(p), matched_idxs.append(idx), labels.append(lab)
        pos, neg = self.fg_bg_sampler(labels)
        regression_targets = []
        for i, t in enumerate(targets):
            xp = array_module(props[i])
            keep = xp.nonzero(raw(pos[i]) | raw(neg[i]))[0]
            props[i], labels[i], matched_idxs[i] = props[i][keep], labels[i][keep], matched_idxs[i][keep]
            gt = raw(t["boxes"]).astype(dtype)
            gt = gt if gt.size else xp.zeros((1, 4), dtype=dtype)
            regression_targets.append(self.box_coder.encode_single(gt[matched_idxs[i]], props[i]).data)
        return props, matched_idxs, labels, regression_targets

    def postprocess_detections(self, class_logits: Tensor, box_regression: Tensor, proposals: list, image_shapes: list):
        logits = raw(class_logits)
        xp = array_module(logits)
        num_classes = logits.shape[-1]
        sizes = [len(raw(p)) for p in proposals]
        boxes_all = self.box_coder.decode(raw(box_regression), [raw(p) for p in proposals]).data
        e = xp.exp(logits - logits.max(axis=-1, keepdims=True))
        scores_all = e / e.sum(axis=-1, keepdims=True)
        out, start = [], 0
        for n, image_shape in zip(sizes, image_shapes):
            boxes = clip_boxes_to_image(Tensor(boxes_all[start:start + n]), image_shape).data
            scores = scores_all[start:start + n]
            start += n
            labels = xp.broadcast_to(xp.arange(num_classes), scores.shape)
            boxes, scores, labels = boxes[:, 1:].reshape(-1, 4), scores[:, 1:].reshape(-1), labels[:, 1:].reshape(-1)
            keep = xp.nonzero(scores > self.score_thresh)[0]
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            keep = remove_small_boxes(Tensor(boxes), 1e-2).data
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            keep = batched_nms(Tensor(boxes), Tensor(scores), Tensor(labels), self.nms_thresh).data[:self.detections_per_img]
            out.append({"boxes": Tensor(boxes[keep]), "labels": Tensor(labels[keep].astype(np.int64)),
                        "scores": Tensor(scores[keep])})
        return out

    def forward(self, features: dict[str, Tensor], proposals: list[Tensor], image_shapes: list,
                targets: list[dict] | None = None) -> tuple[list[dict], dict[str, Tensor]]:
        if self.training:
            proposals, matched_idxs, labels, regression_targets = self.select_training_samples(proposals, targets)
        box_features = self.box_head(self.box_roi_pool(features, [Tensor(raw(p)) for p in proposals], image_shapes))
        class_logits, box_regression = self.box_predictor(box_features)
        result: list[dict] = []
        losses: dict[str, Tensor] = {}
        if self.training:
            loss_classifier, loss_box_reg = fastrcnn_loss(class_logits, box_regression, labels, regression_targets)
            losses = {"loss_classifier": loss_classifier, "loss_box_reg": loss_box_reg}
        else:
            result = self.postprocess_detections(class_logits.detach(), box_regression.detach(), proposals, image_shapes)
        if self.has_mask():
            if self.training:
                xp = array_module(raw(labels[0]))
                fg = [xp.nonzero(l > 0)[0] for l in labels]
                mask_proposals = [Tensor(raw(p)[f]) for p, f in zip(proposals, fg)]
                pos_matched = [m[f] for m, f in zip(matched_idxs, fg)]
            else:
                mask_proposals = [r["boxes"] for r in result]
            mask_logits = self.mask_predictor(self.mask_head(self.mask_roi_pool(features, mask_proposals, image_shapes)))
            if self.training:
                losses["loss_mask"] = maskrcnn_loss(mask_logits, mask_proposals, [t["masks"] for t in targets],
                                                    [t["labels"] for t in targets], pos_matched)
            else:
                logits = raw(mask_logits.detach())
                xp = array_module(logits)
                probs = 1 / (1 + xp.exp(-logits))            # each detection's own class's map
                start = 0
                for r in result:
                    lab = raw(r["labels"])
                    r["masks"] = Tensor(probs[start:start + len(lab)][xp.arange(len(lab)), lab][:, None])
                    start += len(lab)
        return result, losses
