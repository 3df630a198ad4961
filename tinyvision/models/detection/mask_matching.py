"""MaskFormer's set loss (Cheng et al. 2021): DETR's matching and loss with masks in place of boxes.

Each query predicts a class (or "no object") and a mask (logits (h, w)). Matching cost of
query i and segment j, with s = sigmoid(mask logits), t the segment's binary mask, P = h * w:

    C[i, j] = w_class * (-p_i(c_j)) + w_mask * focal(s_i, t_j) + w_dice * dice(s_i, t_j)
    focal(s, t) = (1/P) sum_x [ t alpha (1 - s)^g (-log s) + (1 - t) (1 - alpha) s^g (-log(1 - s)) ]
    dice(s, t)  = 1 - (2 sum_x s t + 1) / (sum_x s + sum_x t + 1)

(MaskFormer's weights: 1, 20, 1; alpha 0.25, gamma 2). The loss on the matched pairs is the
same focal and Dice terms summed over the segments and divided by their number, plus DETR's
weighted cross-entropy over all queries (``SetCriterion.loss_labels``, eos_coef 0.1).

Masks are compared at the prediction's resolution: target masks are resized to (h, w) by
nearest neighbour (MaskFormer's matcher does the same; its loss upsamples the predictions
instead, which costs more and changes little for shapes of 10+ pixels).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from tinyvision import functional as F
from tinyvision.autograd.tensor import Tensor
from tinyvision.kernels.compat import to_device
from tinyvision.models.detection.detr_criterion import SetCriterion
from tinyvision.models.detection.detr_matcher import _array

MASK_WEIGHTS = {"loss_ce": 1.0, "loss_mask": 20.0, "loss_dice": 1.0}


def resize_masks(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(M, H, W) -> (M, h, w) by nearest neighbour (torch's 'nearest': source index floor(i * H / h))."""
    h, w = size
    rows = np.floor(np.arange(h) * masks.shape[1] / h).astype(np.int64)
    cols = np.floor(np.arange(w) * masks.shape[2] / w).astype(np.int64)
    return masks[:, rows][:, :, cols]


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0, -x)


def focal_cost(logits: np.ndarray, targets: np.ndarray, alpha: float = 0.25, gamma: float = 2) -> np.ndarray:
    """Pairwise mean sigmoid focal loss: logits (Q, P), targets (M, P) in {0, 1} -> (Q, M)."""
    s = 1 / (1 + np.exp(-logits))
    pos = alpha * (1 - s) ** gamma * -_log_sigmoid(logits)          # the loss if the pixel is in the mask
    neg = (1 - alpha) * s ** gamma * -_log_sigmoid(-logits)         # ... and if it is not
    return (pos @ targets.T + neg @ (1 - targets).T) / logits.shape[1]


def dice_cost(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Pairwise Dice loss: logits (Q, P), targets (M, P) -> (Q, M)."""
    s = 1 / (1 + np.exp(-logits))
    return 1 - (2 * s @ targets.T + 1) / (s.sum(1)[:, None] + targets.sum(1)[None, :] + 1)


class MaskHungarianMatcher:
    """``matcher(outputs, targets)`` -> one (query_idx, target_idx) pair per image.

    outputs: {"pred_logits" (N, Q, C + 1), "pred_masks" (N, Q, h, w) logits}; targets: N dicts
    with "labels" (M_i,) in [0, C) and "masks" (M_i, H, W) binary.
    """

    def __init__(self, cost_class: float = 1, cost_mask: float = 20, cost_dice: float = 1) -> None:
        self.cost_class, self.cost_mask, self.cost_dice = cost_class, cost_mask, cost_dice

    def cost_matrix(self, logits: np.ndarray, masks: np.ndarray, labels: np.ndarray, target_masks: np.ndarray) -> np.ndarray:
        """C (Q, M): logits (Q, C + 1), masks (Q, h, w), labels (M,), target_masks (M, h, w)."""
        z = np.exp(logits - logits.max(-1, keepdims=True))
        prob = z / z.sum(-1, keepdims=True)
        m, t = masks.reshape(len(masks), -1), target_masks.reshape(len(target_masks), -1).astype(masks.dtype)
        return (self.cost_class * -prob[:, labels] + self.cost_mask * focal_cost(m, t)
                + self.cost_dice * dice_cost(m, t))

    def __call__(self, outputs: dict[str, Any], targets: list[dict[str, Any]]) -> list[tuple[np.ndarray, np.ndarray]]:
        logits, masks = _array(outputs["pred_logits"]), _array(outputs["pred_masks"])
        n, q = logits.shape[:2]
        if masks.ndim != 4 or masks.shape[:2] != (n, q) or len(targets) != n:
            raise ValueError(f"MaskHungarianMatcher: pred_logits (N, Q, C + 1) = {logits.shape}, pred_masks must be "
                             f"(N, Q, h, w), got {masks.shape}, and {len(targets)} targets for N = {n}")
        indices = []
        for i, target in enumerate(targets):
            labels = _array(target["labels"]).astype(np.int64).reshape(-1)
            if len(labels) > q:
                raise ValueError(f"MaskHungarianMatcher: targets[{i}] has {len(labels)} segments but the model has only "
                                 f"{q} queries; every segment needs its own query (raise num_queries)")
            if len(labels) == 0:
                indices.append((np.zeros(0, np.int64), np.zeros(0, np.int64)))
                continue
            target_masks = resize_masks(_array(target["masks"]).reshape(len(labels), *_array(target["masks"]).shape[-2:]),
                                        masks.shape[-2:])
            rows, cols = linear_sum_assignment(self.cost_matrix(logits[i], masks[i], labels, target_masks))
            indices.append((rows.astype(np.int64), cols.astype(np.int64)))
        return indices


class MaskSetCriterion(SetCriterion):
    """DETR's SetCriterion with the mask terms (``loss_mask``: focal, ``loss_dice``) for the box terms."""

    def __init__(self, num_classes: int, matcher: MaskHungarianMatcher | None = None,
                 weight_dict: dict[str, float] | None = None, eos_coef: float = 0.1) -> None:
        super().__init__(num_classes, None, dict(weight_dict or MASK_WEIGHTS), eos_coef)
        self.matcher = matcher or MaskHungarianMatcher()

    def loss_masks(self, masks: Tensor, targets: list[dict], indices: list, num_masks: float) -> tuple[Tensor, Tensor]:
        batch = np.concatenate([np.full(len(rows), i, dtype=np.int64) for i, (rows, _) in enumerate(indices)])
        rows = np.concatenate([rows for rows, _ in indices])
        if len(rows) == 0:
            zero = masks.sum() * 0.0
            return zero, zero
        size = masks.shape[-2:]
        src = masks[to_device(batch, masks.device), to_device(rows, masks.device)].flatten(1)        # (K, P)
        tgt = np.concatenate([resize_masks(_array(t["masks"]).reshape(-1, *_array(t["masks"]).shape[-2:]), size)[cols]
                              for t, (_, cols) in zip(targets, indices)]).reshape(len(rows), -1)
        tgt = Tensor(to_device(tgt.astype(masks.dtype), masks.device))
        s = F.sigmoid(src)
        # focal: alpha t (1 - s)^2 (-log s) + (1 - alpha)(1 - t) s^2 (-log(1 - s)), mean over pixels
        focal = 0.25 * tgt * (1 - s) ** 2 * -F.logsigmoid(src) + 0.75 * (1 - tgt) * s ** 2 * -F.logsigmoid(-src)
        loss_mask = focal.mean(1).sum() / num_masks
        dice = 1 - (2 * (s * tgt).sum(1) + 1) / (s.sum(1) + tgt.sum(1) + 1)
        return loss_mask, dice.sum() / num_masks

    def _losses(self, outputs: dict[str, Any], targets: list[dict], num_boxes: float) -> tuple[dict, list]:
        indices = self.matcher(outputs, targets)
        loss_mask, loss_dice = self.loss_masks(outputs["pred_masks"], targets, indices, num_boxes)
        return {"loss_ce": self.loss_labels(outputs["pred_logits"], targets, indices),
                "loss_mask": loss_mask, "loss_dice": loss_dice}, indices
