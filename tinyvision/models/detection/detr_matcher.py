"""DETR's bipartite matching: which prediction answers which ground-truth object.

DETR predicts a fixed set of Q boxes and trains them against the M <= Q objects of an image.
Before any loss can be computed, each object must be given to exactly one prediction; the rest
are trained to say "no object". The assignment is the one that costs least in total,

    sigma* = argmin over injective sigma: {objects} -> {queries} of  sum_j C[sigma(j), j],
    C[i, j] = w_class * (-p_i(c_j)) + w_bbox * ||b_i - b_j||_1 + w_giou * (-GIoU(b_i, b_j)),

with p_i the softmax of query i's logits, c_j and b_j object j's class and box (normalised
cxcywh; the GIoU is taken on the xyxy corners), and the paper's weights 1, 5, 2. The class term
uses -p rather than -log p so that it is on the scale of the box terms. The minimum is found
exactly by the Hungarian algorithm (scipy.optimize.linear_sum_assignment, O(Q^3)).

Because every object is matched to one prediction only, two predictions can never both be
trained towards the same object: duplicates are penalised by the loss itself, which is why
DETR needs no non-maximum suppression.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from tinyvision.autograd.function import no_grad
from tinyvision.autograd.tensor import Tensor
from tinyvision.kernels.compat import to_numpy
from tinyvision.ops.boxes import box_convert, generalized_box_iou


def _array(x: Any) -> np.ndarray:
    return to_numpy(x.data if isinstance(x, Tensor) else x)


class HungarianMatcher:
    """``matcher(outputs, targets)`` -> one ``(query_idx, target_idx)`` pair of int64 arrays per image.

    outputs: {"pred_logits": (N, Q, C + 1), "pred_boxes": (N, Q, 4) normalised cxcywh};
    targets: N dicts with "labels" (M_i,) and "boxes" (M_i, 4) normalised cxcywh.
    ``query_idx[k]`` is matched with ``target_idx[k]``; len = M_i (every object is matched).
    """

    def __init__(self, cost_class: float = 1, cost_bbox: float = 5, cost_giou: float = 2) -> None:
        if cost_class == 0 and cost_bbox == 0 and cost_giou == 0:
            raise ValueError("HungarianMatcher: all costs can't be 0")
        self.cost_class, self.cost_bbox, self.cost_giou = cost_class, cost_bbox, cost_giou

    def cost_matrix(self, logits: np.ndarray, boxes: np.ndarray, labels: np.ndarray,
                    target_boxes: np.ndarray) -> np.ndarray:
        """C (Q, M) for one image: logits (Q, C + 1), boxes (Q, 4), labels (M,), target_boxes (M, 4)."""
        z = logits - logits.max(-1, keepdims=True)
        prob = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
        cost_class = -prob[:, labels]                                            # (Q, M)
        cost_bbox = np.abs(boxes[:, None, :] - target_boxes[None, :, :]).sum(-1)  # pairwise L1
        with no_grad():
            giou = generalized_box_iou(box_convert(Tensor(boxes), "cxcywh", "xyxy"),
                                       box_convert(Tensor(target_boxes), "cxcywh", "xyxy")).data
        return self.cost_bbox * cost_bbox + self.cost_class * cost_class + self.cost_giou * (-giou)

    def __call__(self, outputs: dict[str, Any], targets: list[dict[str, Any]]) -> list[tuple[np.ndarray, np.ndarray]]:
        logits, boxes = _array(outputs["pred_logits"]), _array(outputs["pred_boxes"])
        if logits.ndim != 3 or boxes.shape != logits.shape[:2] + (4,):
            raise ValueError(f"HungarianMatcher: pred_logits must be (N, Q, C + 1) and pred_boxes (N, Q, 4), got "
                             f"{logits.shape} and {boxes.shape}")
        n, q = logits.shape[:2]
        if len(targets) != n:
            raise ValueError(f"HungarianMatcher: {n} images of predictions but {len(targets)} targets")
        indices = []
        for i, target in enumerate(targets):
            labels = _array(target["labels"]).astype(np.int64).reshape(-1)
            target_boxes = _array(target["boxes"]).astype(boxes.dtype).reshape(-1, 4)
            if len(labels) != len(target_boxes):
                raise ValueError(f"HungarianMatcher: targets[{i}] has {len(labels)} labels but {len(target_boxes)} boxes")
            if len(labels) > q:
                raise ValueError(f"HungarianMatcher: targets[{i}] has {len(labels)} objects but the model has only "
                                 f"{q} queries; every object needs its own query (raise num_queries)")
            if len(labels) and (labels.min() < 0 or labels.max() >= logits.shape[2] - 1):
                raise ValueError(f"HungarianMatcher: targets[{i}]['labels'] must lie in [0, {logits.shape[2] - 2}] "
                                 f"(the last logit is 'no object'), got {labels.tolist()}")
            if len(labels) == 0:
                indices.append((np.zeros(0, np.int64), np.zeros(0, np.int64)))
                continue
            rows, cols = linear_sum_assignment(self.cost_matrix(logits[i], boxes[i], labels, target_boxes))
            indices.append((rows.astype(np.int64), cols.astype(np.int64)))
        return indices
