"""Segmentation metrics: the confusion matrix, pixel accuracy, (mean) IoU and panoptic quality.

Every pixel metric is read off one ``(C, C)`` confusion matrix ``M`` whose row is the true
class and whose column is the predicted class (torchmetrics' layout):

    IoU_c = M[c, c] / (sum_j M[c, j] + sum_i M[i, c] - M[c, c])     (TP / (TP + FP + FN))
    pixel accuracy = trace(M) / sum(M)

The mean IoU follows torchmetrics' ``JaccardIndex(task="multiclass", average="macro")``: the
mean over the classes that occur in the target or the prediction (a class absent from both has
no IoU and is left out); a class predicted but never true counts as 0; with ``ignore_index``,
pixels whose target is that value are dropped, and that class (if it is one of the C) is left
out of the mean. Over a data set the matrix is summed over images first (``JaccardIndex``
accumulates it), so the figure is not a mean of per-image figures.

Panoptic quality (Kirillov et al. 2019) scores instance masks: a predicted and a true segment
of the same class match when their IoU > 0.5 (unique, because segments of one image do not
overlap), and per class

    PQ = sum_{matched} IoU / (TP + FP / 2 + FN / 2) = SQ * RQ,
    SQ = sum_{matched} IoU / TP,   RQ = TP / (TP + FP / 2 + FN / 2),

averaged over the classes that have a segment in the target or the prediction.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from tinyvision.autograd.tensor import Tensor
from tinyvision.kernels.compat import to_numpy


def _numpy(x: Any) -> np.ndarray:
    """A Tensor (any device, in a graph or not) or array-like -> a NumPy array."""
    return to_numpy(x.data if isinstance(x, Tensor) else x)


def _labels(pred: Any, target: Any, num_classes: int, ignore_index: int | None,
            name: str) -> tuple[np.ndarray, np.ndarray]:
    """Flat int64 (predicted class, true class) of the pixels that count.

    pred: class indices of the target's shape, or scores with the classes on dim 1 (N, C, ...)
    for a target (N, ...) (argmax taken, as torchmetrics does).
    """
    pred, target = _numpy(pred), _numpy(target)
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"{name}: num_classes must be a positive int, got {num_classes!r}")
    if pred.ndim == target.ndim + 1 and pred.ndim >= 2 and pred.shape[:1] + pred.shape[2:] == target.shape:
        if pred.shape[1] != num_classes:
            raise ValueError(f"{name}: scores {pred.shape} have {pred.shape[1]} classes on dim 1, "
                             f"expected num_classes={num_classes}")
        pred = pred.argmax(axis=1)
    if pred.shape != target.shape:
        raise ValueError(f"{name}: pred {pred.shape} must have the target's shape {target.shape} "
                         f"(class indices) or be (N, num_classes, ...) scores")
    if pred.dtype.kind not in "iub" or target.dtype.kind not in "iub":
        raise TypeError(f"{name}: class indices must be integers, got pred {pred.dtype}, target {target.dtype}")
    pred, target = pred.reshape(-1).astype(np.int64), target.reshape(-1).astype(np.int64)
    if ignore_index is not None:
        keep = target != ignore_index
        pred, target = pred[keep], target[keep]
    for what, v in (("target", target), ("pred", pred)):
        if v.size and (v.min() < 0 or v.max() >= num_classes):
            raise ValueError(f"{name}: {what} holds classes in [{v.min()}, {v.max()}], outside "
                             f"[0, num_classes={num_classes})" + (f" and not ignore_index={ignore_index}"
                                                                 if what == "target" else ""))
    return pred, target


def confusion_matrix(pred: Any, target: Any, num_classes: int, ignore_index: int | None = None) -> np.ndarray:
    """(num_classes, num_classes) int64 counts: row = true class, column = predicted class.

    pred: (N, ...) class indices or (N, C, ...) scores; target: (N, ...) class indices."""
    p, t = _labels(pred, target, num_classes, ignore_index, "confusion_matrix")
    return np.bincount(t * num_classes + p, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def iou_from_confusion(confmat: np.ndarray) -> np.ndarray:
    """(C,) IoU per class, TP / (TP + FP + FN); 0 for a class absent from target and prediction
    (torchmetrics' zero_division=0)."""
    tp = np.diag(confmat).astype(np.float64)
    union = confmat.sum(axis=0) + confmat.sum(axis=1) - tp
    return np.divide(tp, union, out=np.zeros_like(tp), where=union > 0)


def mean_iou_from_confusion(confmat: np.ndarray, ignore_index: int | None = None) -> float:
    """The macro mean of the IoUs over the classes that occur (in target or prediction), the
    ``ignore_index`` class left out; NaN when no class occurs (as torchmetrics)."""
    counted = (confmat.sum(axis=0) + confmat.sum(axis=1)) > 0
    if ignore_index is not None and 0 <= ignore_index < len(confmat):
        counted[ignore_index] = False
    if not counted.any():
        return float("nan")
    return float(iou_from_confusion(confmat)[counted].mean())


def pixel_accuracy_from_confusion(confmat: np.ndarray) -> float:
    total = confmat.sum()
    return float(np.trace(confmat) / total) if total else float("nan")


def per_class_iou(pred: Any, target: Any, num_classes: int, ignore_index: int | None = None) -> np.ndarray:
    """(num_classes,) float64 IoU of each class (torchmetrics' ``average="none"``)."""
    return iou_from_confusion(confusion_matrix(pred, target, num_classes, ignore_index))


def mean_iou(pred: Any, target: Any, num_classes: int, ignore_index: int | None = None) -> float:
    """Mean IoU over the classes present, as torchmetrics' ``JaccardIndex(task="multiclass",
    num_classes, average="macro", ignore_index)``. pred (N, ...) indices or (N, C, ...) scores."""
    return mean_iou_from_confusion(confusion_matrix(pred, target, num_classes, ignore_index), ignore_index)


def pixel_accuracy(pred: Any, target: Any, num_classes: int, ignore_index: int | None = None) -> float:
    """Fraction of (non-ignored) pixels whose class is right, as torchmetrics'
    ``Accuracy(task="multiclass", average="micro")``."""
    return pixel_accuracy_from_confusion(confusion_matrix(pred, target, num_classes, ignore_index))


class JaccardIndex:
    """Mean IoU accumulated over batches, torchmetrics-style: ``update(preds, target)`` adds a
    batch's confusion matrix, ``compute()`` gives the mean IoU of everything seen so far,
    ``reset()`` starts again. ``confmat`` holds the running (C, C) counts, so that per-class IoU
    (``per_class()``) and pixel accuracy (``pixel_accuracy()``) come from the same pixels.

        metric = JaccardIndex(num_classes=4)
        for images, masks in loader:
            metric.update(model(images)["out"], masks)      # scores (N, C, H, W) or indices
        miou = metric.compute()
    """

    def __init__(self, num_classes: int, ignore_index: int | None = None, average: str = "macro") -> None:
        if average not in ("macro", "none"):
            raise ValueError(f"JaccardIndex: average must be 'macro' or 'none', got {average!r}")
        self.num_classes, self.ignore_index, self.average = num_classes, ignore_index, average
        self.reset()

    def reset(self) -> None:
        self.confmat = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def update(self, preds: Any, target: Any) -> None:
        self.confmat += confusion_matrix(preds, target, self.num_classes, self.ignore_index)

    def compute(self) -> float | np.ndarray:
        if self.average == "none":
            return self.per_class()
        return mean_iou_from_confusion(self.confmat, self.ignore_index)

    def per_class(self) -> np.ndarray:
        return iou_from_confusion(self.confmat)

    def pixel_accuracy(self) -> float:
        return pixel_accuracy_from_confusion(self.confmat)

    def __call__(self, preds: Any, target: Any) -> float | np.ndarray:
        """The batch's own value; also accumulates it (torchmetrics' forward)."""
        batch = JaccardIndex(self.num_classes, self.ignore_index, self.average)
        batch.update(preds, target)
        self.confmat += batch.confmat
        return batch.compute()


MeanIoU = JaccardIndex  # the name papers use


# ----------------------------------------------------------------------------- panoptic quality

def _segments(sample: dict, name: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(sample, dict) or "masks" not in sample or "labels" not in sample:
        raise ValueError(f"{name}: each {what} must be a dict with 'masks' (K, H, W) and 'labels' (K,)")
    masks, labels = _numpy(sample["masks"]).astype(bool), _numpy(sample["labels"]).astype(np.int64).reshape(-1)
    if masks.ndim != 3 or len(masks) != len(labels):
        raise ValueError(f"{name}: {what} masks {masks.shape} must be (K, H, W) with K = len(labels) = {len(labels)}")
    if masks.sum(axis=0).max(initial=0) > 1:
        raise ValueError(f"{name}: {what} masks overlap; panoptic segments must be disjoint")
    return masks, labels


class PanopticQuality:
    """PQ, SQ and RQ of instance masks, accumulated over images (per class, then averaged over
    the classes seen), as panopticapi / torchmetrics' ``PanopticQuality`` for "thing" classes.

    ``update(preds, target)`` takes lists (one entry per image) of dicts with "masks" (K, H, W)
    bool, disjoint, and "labels" (K,); pixels in no mask are background and are not scored.
    ``compute()`` returns {"pq", "sq", "rq"} (floats) and ``per_class()`` the (3, classes) values.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.tp, self.fp, self.fn = {}, {}, {}      # class -> count
        self.iou_sum: dict[int, float] = {}

    def _add(self, counter: dict, c: int, v: float = 1) -> None:
        counter[c] = counter.get(c, 0) + v

    def update(self, preds: Sequence[dict], target: Sequence[dict]) -> None:
        if len(preds) != len(target):
            raise ValueError(f"PanopticQuality.update: {len(preds)} predictions for {len(target)} targets")
        for p, t in zip(preds, target):
            pm, pl = _segments(p, "PanopticQuality.update", "prediction")
            tm, tl = _segments(t, "PanopticQuality.update", "target")
            if pm.shape[1:] != tm.shape[1:]:
                raise ValueError(f"PanopticQuality.update: prediction masks {pm.shape} and target masks "
                                 f"{tm.shape} differ in size")
            pixels = int(np.prod(tm.shape[1:]))
            pf, tf = pm.reshape(len(pm), pixels).astype(np.int64), tm.reshape(len(tm), pixels).astype(np.int64)
            inter = tf @ pf.T                                          # (K_true, K_pred) overlaps
            union = tf.sum(1)[:, None] + pf.sum(1)[None, :] - inter
            iou = np.divide(inter, union, out=np.zeros(inter.shape), where=union > 0)
            match = (iou > 0.5) & (tl[:, None] == pl[None, :])         # at most one per row and column
            for i, j in zip(*np.nonzero(match)):
                self._add(self.tp, int(tl[i]))
                self._add(self.iou_sum, int(tl[i]), float(iou[i, j]))
            for i in np.flatnonzero(~match.any(axis=1)):
                self._add(self.fn, int(tl[i]))
            for j in np.flatnonzero(~match.any(axis=0)):
                self._add(self.fp, int(pl[j]))

    def per_class(self) -> tuple[np.ndarray, np.ndarray]:
        """(classes (M,), values (3, M) rows PQ, SQ, RQ) for the classes seen, sorted."""
        classes = np.array(sorted(set(self.tp) | set(self.fp) | set(self.fn)), dtype=np.int64)
        values = np.zeros((3, len(classes)))
        for k, c in enumerate(classes):
            tp, fp, fn, iou = (self.tp.get(c, 0), self.fp.get(c, 0), self.fn.get(c, 0), self.iou_sum.get(c, 0.0))
            sq = iou / tp if tp else 0.0
            rq = tp / (tp + fp / 2 + fn / 2)
            values[:, k] = (sq * rq, sq, rq)
        return classes, values

    def compute(self) -> dict[str, float]:
        classes, values = self.per_class()
        if not len(classes):
            return {"pq": float("nan"), "sq": float("nan"), "rq": float("nan")}
        pq, sq, rq = values.mean(axis=1)
        return {"pq": float(pq), "sq": float(sq), "rq": float(rq)}


def panoptic_quality(preds: Sequence[dict], target: Sequence[dict]) -> dict[str, float]:
    """{"pq", "sq", "rq"} over a list of images (see ``PanopticQuality``)."""
    metric = PanopticQuality()
    metric.update(preds, target)
    return metric.compute()
