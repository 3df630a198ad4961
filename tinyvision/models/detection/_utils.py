"""The machinery every anchor- or proposal-based detector shares, with torchvision's names and
semantics: the box coder, the matcher and the balanced positive/negative sampler.

These work on plain arrays (NumPy or CuPy) wrapped in Tensors without gradient: they produce
training *targets* and decode *detections*, and no gradient flows through either.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from tinyvision.autograd.tensor import Tensor
from tinyvision.kernels.compat import array_module
from tinyvision.random import generator


def raw(x: Any) -> Any:
    """The array inside a Tensor (or the array itself)."""
    return x.data if isinstance(x, Tensor) else x


class BoxCoder:
    """Boxes as offsets from reference boxes (anchors or proposals), Faster R-CNN's parametrisation:

        dx = wx (x_gt - x_ref) / w_ref      dw = ww log(w_gt / w_ref)
        dy = wy (y_gt - y_ref) / h_ref      dh = wh log(h_gt / h_ref)

    with (x, y) box centres and (w, h) sizes. The weights scale the targets to a similar range
    (1 for RetinaNet, (10, 10, 5, 5) for the R-CNN box head). Decoding inverts it, with dw and dh
    clamped at ``bbox_xform_clip = log(1000 / 16)`` so that exp never overflows early in training.
    """

    def __init__(self, weights: Sequence[float], bbox_xform_clip: float = math.log(1000.0 / 16)) -> None:
        self.weights = tuple(float(w) for w in weights)
        self.bbox_xform_clip = bbox_xform_clip

    def encode_single(self, reference_boxes: Any, proposals: Any) -> Tensor:
        """Targets (N, 4) that take ``proposals`` (N, 4) onto ``reference_boxes`` (N, 4) (the truth)."""
        gt, ref = raw(reference_boxes), raw(proposals)
        xp = array_module(gt)
        wx, wy, ww, wh = (gt.dtype.type(w) for w in self.weights)
        ex_w, ex_h = ref[:, 2] - ref[:, 0], ref[:, 3] - ref[:, 1]
        ex_x, ex_y = ref[:, 0] + 0.5 * ex_w, ref[:, 1] + 0.5 * ex_h
        gt_w, gt_h = gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]
        gt_x, gt_y = gt[:, 0] + 0.5 * gt_w, gt[:, 1] + 0.5 * gt_h
        with np.errstate(divide="ignore"):   # a placeholder truth of size 0 (unused, as in torchvision)
            return Tensor(xp.stack([wx * (gt_x - ex_x) / ex_w, wy * (gt_y - ex_y) / ex_h,
                                    ww * xp.log(gt_w / ex_w), wh * xp.log(gt_h / ex_h)], axis=1))

    def encode(self, reference_boxes: list, proposals: list) -> list[Tensor]:
        return [self.encode_single(r, p) for r, p in zip(reference_boxes, proposals)]

    def decode_single(self, rel_codes: Any, boxes: Any) -> Tensor:
        """Boxes (N, 4 * C) from offsets ``rel_codes`` (N, 4 * C) applied to ``boxes`` (N, 4)."""
        codes = raw(rel_codes)
        xp = array_module(codes)
        boxes = raw(boxes).astype(codes.dtype, copy=False)
        widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        ctr_x, ctr_y = boxes[:, 0] + 0.5 * widths, boxes[:, 1] + 0.5 * heights
        wx, wy, ww, wh = self.weights
        dx, dy = codes[:, 0::4] / wx, codes[:, 1::4] / wy
        dw = xp.minimum(codes[:, 2::4] / ww, self.bbox_xform_clip)     # no exp overflow
        dh = xp.minimum(codes[:, 3::4] / wh, self.bbox_xform_clip)
        pred_x, pred_y = dx * widths[:, None] + ctr_x[:, None], dy * heights[:, None] + ctr_y[:, None]
        half_w, half_h = 0.5 * (xp.exp(dw) * widths[:, None]), 0.5 * (xp.exp(dh) * heights[:, None])
        out = xp.stack([pred_x - half_w, pred_y - half_h, pred_x + half_w, pred_y + half_h], axis=2)
        return Tensor(out.reshape(codes.shape[0], codes.shape[1]).astype(codes.dtype, copy=False))

    def decode(self, rel_codes: Any, boxes: list) -> Tensor:
        """Offsets (sum N_i, 4 * C) over images, reference boxes per image -> (sum N_i, C, 4)."""
        codes = raw(rel_codes)
        refs = array_module(codes).concatenate([raw(b) for b in boxes], axis=0)
        decoded = self.decode_single(codes.reshape(len(refs), -1), refs).data
        return Tensor(decoded.reshape(len(refs), -1, 4))


class Matcher:
    """Assigns each prediction (anchor, proposal) to the ground-truth box it overlaps most.

    Given the IoU matrix (G truths x P predictions), prediction p gets the index of its best
    truth if that IoU is >= ``high_threshold``, ``BELOW_LOW_THRESHOLD`` (-1: background) if it is
    < ``low_threshold``, and ``BETWEEN_THRESHOLDS`` (-2: ignored) in between. With
    ``allow_low_quality_matches``, every truth also keeps the predictions that overlap it best
    (all of them on a tie), even below the threshold, so that no object goes without a match.
    """

    BELOW_LOW_THRESHOLD = -1
    BETWEEN_THRESHOLDS = -2

    def __init__(self, high_threshold: float, low_threshold: float, allow_low_quality_matches: bool = False) -> None:
        if low_threshold > high_threshold:
            raise ValueError(f"Matcher: low_threshold {low_threshold} must be <= high_threshold {high_threshold}")
        self.high_threshold, self.low_threshold = high_threshold, low_threshold
        self.allow_low_quality_matches = allow_low_quality_matches

    def __call__(self, match_quality_matrix: Any) -> Tensor:
        iou = raw(match_quality_matrix)
        xp = array_module(iou)
        if iou.size == 0:
            raise ValueError("Matcher: no ground-truth boxes available for one of the images during training"
                             if iou.shape[0] == 0 else "Matcher: no proposal boxes available for one of the images")
        matches = iou.argmax(axis=0)                          # the first best truth on a tie, as torch
        matched_vals = iou[matches, xp.arange(iou.shape[1])]
        result = matches.astype(np.int64)
        result[matched_vals < self.low_threshold] = self.BELOW_LOW_THRESHOLD
        result[(matched_vals >= self.low_threshold) & (matched_vals < self.high_threshold)] = self.BETWEEN_THRESHOLDS
        if self.allow_low_quality_matches:
            best_per_gt = iou.max(axis=1)
            _, preds = xp.nonzero(iou == best_per_gt[:, None])
            result[preds] = matches[preds]
        return Tensor(result)


class BalancedPositiveNegativeSampler:
    """Picks ``batch_size_per_image`` training examples per image, at most ``positive_fraction``
    of them positive (matched index >= 1 after the caller's shift; 0 = background; -1 ignored),
    the rest negative, each drawn at random (from ``tinyvision.random``'s generator)."""

    def __init__(self, batch_size_per_image: int, positive_fraction: float) -> None:
        self.batch_size_per_image, self.positive_fraction = batch_size_per_image, positive_fraction

    def __call__(self, matched_idxs: list) -> tuple[list[Tensor], list[Tensor]]:
        rng = generator("cpu")
        pos_masks, neg_masks = [], []
        for m in matched_idxs:
            m = np.asarray(raw(m))
            positive, negative = np.nonzero(m >= 1)[0], np.nonzero(m == 0)[0]
            num_pos = min(len(positive), int(self.batch_size_per_image * self.positive_fraction))
            num_neg = min(len(negative), self.batch_size_per_image - num_pos)
            pos = np.zeros(len(m), dtype=np.uint8)
            neg = np.zeros(len(m), dtype=np.uint8)
            pos[positive[rng.permutation(len(positive))[:num_pos]]] = 1
            neg[negative[rng.permutation(len(negative))[:num_neg]]] = 1
            pos_masks.append(Tensor(pos))
            neg_masks.append(Tensor(neg))
        return pos_masks, neg_masks
