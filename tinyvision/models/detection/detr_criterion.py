"""DETR's set loss: match predictions to objects (HungarianMatcher), then score the matches.

With sigma the optimal matching of an image's M objects to its Q queries (every other query is
matched with "no object", class C),

    loss_ce   = sum_i w(t_i) * (-log softmax(logits_i)[t_i]) / sum_i w(t_i)      over all N*Q queries,
                t_i = c_j if query i = sigma(j) else C,   w(C) = eos_coef (0.1), w(c) = 1 otherwise
                (torch's weighted cross-entropy: the weights also divide, so down-weighting the
                ~90% of queries that are empty keeps them from swamping the few matched ones);
    loss_bbox = sum_j ||b_sigma(j) - b_j||_1 / num_boxes                         (normalised cxcywh)
    loss_giou = sum_j (1 - GIoU(b_sigma(j), b_j)) / num_boxes                    (on xyxy corners)

with num_boxes = max(total objects in the batch, 1). The total is 1 * loss_ce + 5 * loss_bbox +
2 * loss_giou (``weight_dict``). With ``aux_outputs`` (every decoder layer but the last through
the same heads), each layer is matched on its own and adds the same three terms, suffixed
``_0``, ``_1``, ...: deep supervision that the paper found to help the decoder converge.

An image without objects contributes only "no object" terms to loss_ce; a batch without any
object has loss_bbox = loss_giou = 0.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tinyvision import functional as F
from tinyvision.autograd.tensor import Tensor
from tinyvision.kernels.compat import array_module, to_device
from tinyvision.models.detection.detr_matcher import HungarianMatcher
from tinyvision.nn import Module
from tinyvision.ops.boxes import box_convert, generalized_box_iou

DEFAULT_WEIGHTS = {"loss_ce": 1.0, "loss_bbox": 5.0, "loss_giou": 2.0}


def _raw(x: Any) -> Any:
    return x.data if isinstance(x, Tensor) else x


class SetCriterion(Module):
    """``criterion(outputs, targets)`` -> dict of losses (see the module docstring).

    outputs: {"pred_logits" (N, Q, num_classes + 1), "pred_boxes" (N, Q, 4), optional
    "aux_outputs": [{"pred_logits", "pred_boxes"}, ...]}; targets: N dicts with "labels" (M_i,)
    in [0, num_classes) and "boxes" (M_i, 4) normalised cxcywh.
    """

    def __init__(self, num_classes: int, matcher: HungarianMatcher | None = None,
                 weight_dict: dict[str, float] | None = None, eos_coef: float = 0.1) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.matcher = matcher or HungarianMatcher()
        self.eos_coef = eos_coef
        self.weight_dict = dict(weight_dict or DEFAULT_WEIGHTS)
        weight = np.ones(num_classes + 1)
        weight[-1] = eos_coef
        # not persistent: a checkpoint of a TrainModule holding this criterion stays the model's
        self.register_buffer("empty_weight", Tensor(weight), persistent=False)

    def loss_labels(self, logits: Tensor, targets: list[dict], indices: list) -> Tensor:
        n, q, c1 = logits.shape
        if c1 != self.num_classes + 1:
            raise ValueError(f"SetCriterion: pred_logits has {c1} classes, expected num_classes + 1 = "
                             f"{self.num_classes + 1} (the last one is 'no object')")
        target_classes = np.full((n, q), self.num_classes, dtype=np.int64)
        for i, (target, (rows, cols)) in enumerate(zip(targets, indices)):
            target_classes[i, rows] = np.asarray(_raw(target["labels"]), dtype=np.int64).reshape(-1)[cols]
        target_classes = to_device(target_classes, logits.device)
        weight = Tensor(self.empty_weight.data.astype(logits.dtype))
        return F.cross_entropy(logits.reshape(n * q, c1), Tensor(target_classes.reshape(-1)), weight=weight)

    def loss_boxes(self, boxes: Tensor, targets: list[dict], indices: list, num_boxes: float) -> tuple[Tensor, Tensor]:
        batch = np.concatenate([np.full(len(rows), i, dtype=np.int64) for i, (rows, _) in enumerate(indices)])
        rows = np.concatenate([rows for rows, _ in indices])
        if len(rows) == 0:                       # no object anywhere: nothing to regress
            zero = boxes.sum() * 0.0
            return zero, zero
        xp = array_module(boxes.data)
        src = boxes[to_device(batch, boxes.device), to_device(rows, boxes.device)]           # (K, 4)
        tgt = Tensor(xp.concatenate([xp.asarray(_raw(t["boxes"]), dtype=boxes.dtype).reshape(-1, 4)[cols]
                                     for t, (_, cols) in zip(targets, indices)]))
        loss_bbox = (src - tgt).abs().sum() / num_boxes
        giou = generalized_box_iou(box_convert(src, "cxcywh", "xyxy"), box_convert(tgt, "cxcywh", "xyxy"))
        k = np.arange(len(rows))
        loss_giou = (1.0 - giou[to_device(k, boxes.device), to_device(k, boxes.device)]).sum() / num_boxes
        return loss_bbox, loss_giou

    def _losses(self, outputs: dict[str, Any], targets: list[dict], num_boxes: float) -> tuple[dict, list]:
        indices = self.matcher(outputs, targets)
        loss_bbox, loss_giou = self.loss_boxes(outputs["pred_boxes"], targets, indices, num_boxes)
        return {"loss_ce": self.loss_labels(outputs["pred_logits"], targets, indices),
                "loss_bbox": loss_bbox, "loss_giou": loss_giou}, indices

    def forward(self, outputs: dict[str, Any], targets: list[dict]) -> dict[str, Tensor]:
        if len(targets) != outputs["pred_logits"].shape[0]:
            raise ValueError(f"SetCriterion: {outputs['pred_logits'].shape[0]} images of predictions but "
                             f"{len(targets)} targets")
        num_boxes = max(float(sum(len(np.asarray(_raw(t["labels"])).reshape(-1)) for t in targets)), 1.0)
        losses, _ = self._losses(outputs, targets, num_boxes)
        for i, aux in enumerate(outputs.get("aux_outputs", [])):
            aux_losses, _ = self._losses(aux, targets, num_boxes)
            losses.update({f"{k}_{i}": v for k, v in aux_losses.items()})
        return losses

    def total(self, losses: dict[str, Tensor]) -> Tensor:
        """sum over the losses of weight_dict[k without the aux suffix] * loss."""
        terms = [losses[k] * self.weight_dict[k.rsplit("_", 1)[0] if k[-1].isdigit() else k] for k in losses]
        return sum(terms[1:], terms[0])
