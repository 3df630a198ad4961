"""COCO mean average precision, with torchmetrics' ``MeanAveragePrecision`` API and pycocotools'
``COCOeval`` arithmetic (the numbers are equal, ties and edge cases included).

How COCO scores a detector, per category and per image:

1. **Match.** Detections are taken by descending score (ties keep their order; at most
   ``maxDet`` per image). Each one is matched, at IoU threshold t, to the unmatched ground-truth
   box it overlaps most with IoU >= t (a crowd box may absorb any number of detections; a
   detection never trades a real box for an ignored one). Ground truth outside the area range
   (or crowd) is *ignored*: a detection matched to it counts neither way, and so does an
   unmatched detection whose own area is outside the range.
2. **Precision-recall.** All images' detections of the category are merged by score; running
   sums of true and false positives give recall = TP / #GT and precision = TP / (TP + FP).
3. **Interpolate.** Precision is made non-increasing from the right (the best precision at any
   higher recall), then read at the 101 recall points 0, 0.01, ..., 1: AP is their mean, and a
   recall the detector never reaches reads 0.
4. **Average.** ``map`` is the mean over the 10 IoU thresholds 0.50:0.05:0.95 and the categories
   that have ground truth; ``map_50`` / ``map_75`` at one threshold; ``map_small/medium/large``
   over the area ranges [0, 32^2], [32^2, 96^2], [96^2, inf); ``mar_1/10/100`` is the recall with
   at most 1/10/100 detections per image, averaged the same way. A value without any
   ground truth to score is -1, as in COCO.

IoU is box IoU on ``(x, y, w, h)`` boxes (``iou_type='bbox'``) or pixel IoU of binary masks
(``'segm'``). Thresholds default to torchmetrics' (float32-rounded linspace values).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

AREA_RANGES = {"all": (0.0, 1e5 ** 2), "small": (0.0, 32.0 ** 2), "medium": (32.0 ** 2, 96.0 ** 2),
               "large": (96.0 ** 2, 1e5 ** 2)}


def float32_linspace(start: float, end: float, steps: int) -> list[float]:
    """torch.linspace(start, end, steps) in float32, value for value: a float32 step, the first
    half counted up from ``start`` and the second half down from ``end``, each rounded to float32.
    (torchmetrics' default thresholds are these values, and a recall of exactly 0.05 falls on
    different sides of 0.05 and of float32's 0.04999999702.)"""
    f32 = np.float32
    step = float(f32(f32(end) - f32(start)) / f32(steps - 1))
    i = np.arange(steps)
    values = np.where(i < steps // 2, float(f32(start)) + step * i, float(f32(end)) - step * (steps - 1 - i))
    return [float(v) for v in values.astype(f32)]


IOU_THRESHOLDS = float32_linspace(0.5, 0.95, 10)   # torchmetrics' defaults
REC_THRESHOLDS = float32_linspace(0.0, 1.0, 101)
BOX_FORMATS = ("xyxy", "xywh", "cxcywh")


def _numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach()
    if hasattr(x, "numpy"):
        return x.numpy()
    return x.get() if hasattr(x, "get") else np.asarray(x)


def _to_xywh(boxes: np.ndarray, fmt: str) -> np.ndarray:
    """In the boxes' own dtype (as torchmetrics converts), then float64 (as pycocotools reads)."""
    x1, y1, a, b = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    if fmt == "xyxy":
        out = np.stack([x1, y1, a - x1, b - y1], axis=1)
    elif fmt == "cxcywh":
        out = np.stack([x1 - 0.5 * a, y1 - 0.5 * b, a, b], axis=1)
        out[:, 2] = (x1 + 0.5 * a) - out[:, 0]              # via xyxy, as torchvision's box_convert
        out[:, 3] = (y1 + 0.5 * b) - out[:, 1]
    else:
        out = boxes.copy()
    return out.astype(np.float64)


def box_iou_xywh(dt: np.ndarray, gt: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """pycocotools' box IoU (D, G): intersection over union, or over the detection's own area
    for a crowd ground truth; computed in the same order as its C code."""
    if len(dt) == 0 or len(gt) == 0:
        return np.zeros((len(dt), len(gt)))
    D, G = dt[:, None, :], gt[None, :, :]
    w = np.minimum(D[..., 2] + D[..., 0], G[..., 2] + G[..., 0]) - np.maximum(D[..., 0], G[..., 0])
    h = np.minimum(D[..., 3] + D[..., 1], G[..., 3] + G[..., 1]) - np.maximum(D[..., 1], G[..., 1])
    inter = w * h
    da, ga = D[..., 2] * D[..., 3], G[..., 2] * G[..., 3]
    union = np.where(crowd[None, :], da, da + ga - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    return np.where((w > 0) & (h > 0), iou, 0.0)


def mask_iou(dt: np.ndarray, gt: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """Pixel IoU (D, G) of binary masks (D, H, W) and (G, H, W); crowd: over the detection's area."""
    if len(dt) == 0 or len(gt) == 0:
        return np.zeros((len(dt), len(gt)))
    d = dt.reshape(len(dt), -1).astype(np.float64)
    g = gt.reshape(len(gt), -1).astype(np.float64)
    inter = d @ g.T
    da, ga = d.sum(axis=1)[:, None], g.sum(axis=1)[None, :]
    union = np.where(crowd[None, :], da, da + ga - inter)
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def evaluate_image(ious: np.ndarray, gt_area: np.ndarray, gt_crowd: np.ndarray, dt_area: np.ndarray,
                   dt_scores: np.ndarray, area_range: tuple[float, float], max_det: int,
                   iou_thresholds: np.ndarray) -> dict | None:
    """COCOeval.evaluateImg for one (image, category, area range, maxDet).

    ``ious`` (D, G) has the detections already in score order and cut to the largest maxDet
    (COCOeval.computeIoU); the others are per detection / ground truth in their given order.
    Returns the score-ordered detections' matches (T, D) and ignore flags, and the ground
    truth's ignore flags, or None when the image has neither.
    """
    G, D = len(gt_area), len(dt_scores)
    if G == 0 and D == 0:
        return None
    ignore = gt_crowd | (gt_area < area_range[0]) | (gt_area > area_range[1])
    gt_order = np.argsort(ignore, kind="mergesort")          # real ground truth first
    ignore, crowd = ignore[gt_order], gt_crowd[gt_order]
    dt_order = np.argsort(-dt_scores, kind="mergesort")[:max_det]
    ious = ious[:len(dt_order)][:, gt_order] if ious.size else ious
    T = len(iou_thresholds)
    gt_matched = np.zeros((T, G), dtype=bool)
    dt_matched = np.zeros((T, len(dt_order)), dtype=bool)
    dt_ignored = np.zeros((T, len(dt_order)), dtype=bool)
    thresholds = np.minimum(iou_thresholds, 1 - 1e-10)[:, None]
    for d in range(len(dt_order) if G else 0):
        # COCO's loop over the truths, for all thresholds at once: among the truths still free
        # (crowds always are) with IoU >= t, take the best real one (the last on a tie), and an
        # ignored one only when no real one qualifies
        ok = (~gt_matched | crowd[None, :]) & (ious[d][None, :] >= thresholds)        # (T, G)
        real = ok & ~ignore[None, :]
        candidates = np.where(real.any(axis=1, keepdims=True), real, ok & ignore[None, :])
        found = np.nonzero(candidates.any(axis=1))[0]
        if len(found) == 0:
            continue
        values = np.where(candidates[found], ious[d][None, :], -np.inf)
        m = G - 1 - np.argmax(values[:, ::-1], axis=1)                                # the last best
        dt_ignored[found, d] = ignore[m]
        dt_matched[found, d] = True
        gt_matched[found, m] = True
    outside = (dt_area[dt_order] < area_range[0]) | (dt_area[dt_order] > area_range[1])
    dt_ignored |= ~dt_matched & outside[None, :]
    return {"scores": dt_scores[dt_order], "matched": dt_matched, "dt_ignored": dt_ignored, "gt_ignored": ignore}


def accumulate(evals: list[dict | None], max_det: int, rec_thresholds: np.ndarray, T: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval.accumulate for one (category, area range, maxDet) over all images: the
    interpolated precision (T, R) and the recall (T,), both -1 without ground truth to score."""
    R = len(rec_thresholds)
    evals = [e for e in evals if e is not None]
    precision, recall = -np.ones((T, R)), -np.ones(T)
    if not evals:
        return precision, recall
    scores = np.concatenate([e["scores"][:max_det] for e in evals])
    order = np.argsort(-scores, kind="mergesort")            # images in order, then score order
    matched = np.concatenate([e["matched"][:, :max_det] for e in evals], axis=1)[:, order]
    ignored = np.concatenate([e["dt_ignored"][:, :max_det] for e in evals], axis=1)[:, order]
    n_gt = int(np.count_nonzero(~np.concatenate([e["gt_ignored"] for e in evals])))
    if n_gt == 0:
        return precision, recall
    tp = np.cumsum(matched & ~ignored, axis=1).astype(np.float64)
    fp = np.cumsum(~matched & ~ignored, axis=1).astype(np.float64)
    for t in range(T):
        rc = tp[t] / n_gt
        pr = tp[t] / (fp[t] + tp[t] + np.spacing(1))
        recall[t] = rc[-1] if len(rc) else 0
        pr = np.maximum.accumulate(pr[::-1])[::-1]            # best precision at any higher recall
        at = np.searchsorted(rc, rec_thresholds, side="left")
        precision[t] = np.where(at < len(pr), pr[np.minimum(at, len(pr) - 1)] if len(pr) else 0, 0)
    return precision, recall


def _mean(values: np.ndarray) -> float:
    """The mean of the entries that are not -1 (COCO's 'nothing to score'), or -1."""
    kept = values[values > -1]
    return float(kept.mean()) if kept.size else -1.0


class MeanAveragePrecision:
    """COCO mAP with torchmetrics' API: ``update(preds, target)`` per batch, then ``compute()``.

    preds: a list (one per image) of dicts with ``boxes`` (N, 4), ``scores`` (N,), ``labels`` (N,)
    (and ``masks`` (N, H, W) bool for ``iou_type='segm'``); target: dicts with ``boxes``,
    ``labels`` (and ``masks``; optional ``iscrowd`` and ``area``). Tensors or arrays.
    ``compute()`` returns floats ``map, map_50, map_75, map_small, map_medium, map_large,
    mar_1, mar_10, mar_100, mar_small, mar_medium, mar_large`` (with ``iou_type=('bbox', 'segm')``
    each prefixed ``bbox_`` / ``segm_``), plus ``map_per_class`` and ``mar_100_per_class``
    (arrays with ``class_metrics=True``, else [-1]) and ``classes``.
    """

    def __init__(self, box_format: str = "xyxy", iou_type: str | Sequence[str] = "bbox",
                 iou_thresholds: Sequence[float] | None = None, rec_thresholds: Sequence[float] | None = None,
                 max_detection_thresholds: Sequence[int] | None = None, class_metrics: bool = False,
                 average: str = "macro") -> None:
        if box_format not in BOX_FORMATS:
            raise ValueError(f"MeanAveragePrecision: box_format must be one of {BOX_FORMATS}, got {box_format!r}")
        types = (iou_type,) if isinstance(iou_type, str) else tuple(iou_type)
        if not types or any(t not in ("bbox", "segm") for t in types):
            raise ValueError(f"MeanAveragePrecision: iou_type must be 'bbox', 'segm' or both, got {iou_type!r}")
        if average not in ("macro", "micro"):
            raise ValueError(f"MeanAveragePrecision: average must be 'macro' or 'micro', got {average!r}")
        self.box_format, self.iou_type, self.average = box_format, types, average
        self.iou_thresholds = np.asarray(iou_thresholds if iou_thresholds is not None else IOU_THRESHOLDS, float)
        self.rec_thresholds = np.asarray(rec_thresholds if rec_thresholds is not None else REC_THRESHOLDS, float)
        self.max_detection_thresholds = sorted(int(m) for m in (max_detection_thresholds or (1, 10, 100)))
        if len(self.max_detection_thresholds) != 3:
            raise ValueError("MeanAveragePrecision: max_detection_thresholds must hold 3 values, got "
                             f"{max_detection_thresholds!r}")
        self.class_metrics = class_metrics
        self.reset()

    def reset(self) -> None:
        self.detections: list[dict] = []
        self.groundtruths: list[dict] = []

    # ------------------------------------------------------------------ input
    def _read(self, item: Any, i: int, what: str, scored: bool) -> dict:
        if not isinstance(item, dict):
            raise ValueError(f"MeanAveragePrecision.update: {what}[{i}] must be a dict, got {type(item).__name__}")
        need = (["boxes"] if "bbox" in self.iou_type else []) + (["masks"] if "segm" in self.iou_type else []) \
            + ["labels"] + (["scores"] if scored else [])
        missing = [k for k in need if k not in item]
        if missing:
            raise ValueError(f"MeanAveragePrecision.update: {what}[{i}] lacks {missing} (iou_type={self.iou_type})")
        labels = _numpy(item["labels"]).reshape(-1)
        if labels.size and labels.dtype.kind not in "iu":
            raise ValueError(f"MeanAveragePrecision.update: {what}[{i}]['labels'] must be integers, got {labels.dtype}")
        n = len(labels)
        out: dict = {"labels": labels.astype(np.int64)}
        if "boxes" in item and "bbox" in self.iou_type:
            boxes = _numpy(item["boxes"])
            boxes = boxes.reshape(0, 4) if boxes.size == 0 else boxes
            if boxes.ndim != 2 or boxes.shape != (n, 4):
                raise ValueError(f"MeanAveragePrecision.update: {what}[{i}]['boxes'] must be ({n}, 4) to match its "
                                 f"{n} labels, got {tuple(boxes.shape)}")
            if not np.isfinite(boxes).all():
                raise ValueError(f"MeanAveragePrecision.update: {what}[{i}]['boxes'] has NaN or inf coordinates")
            out["boxes"] = _to_xywh(boxes, self.box_format)
            out["box_area"] = out["boxes"][:, 2] * out["boxes"][:, 3]
        if "segm" in self.iou_type:
            masks = _numpy(item["masks"]).astype(bool)
            if n == 0 and masks.size == 0 and masks.ndim != 3:
                masks = masks.reshape(0, 0, 0)                 # no objects: any empty array will do
            if masks.ndim != 3 or len(masks) != n:
                raise ValueError(f"MeanAveragePrecision.update: {what}[{i}]['masks'] must be ({n}, H, W) to match its "
                                 f"{n} labels, got {tuple(masks.shape)}")
            out["masks"] = masks
            out["mask_area"] = masks.reshape(n, masks.shape[1] * masks.shape[2]).sum(axis=1).astype(np.float64)
        if scored:
            scores = _numpy(item["scores"]).reshape(-1).astype(np.float64)
            if len(scores) != n:
                raise ValueError(f"MeanAveragePrecision.update: {what}[{i}]['scores'] has {len(scores)} values for {n} labels")
            out["scores"] = scores
        else:
            out["crowd"] = _numpy(item.get("iscrowd", np.zeros(n))).reshape(-1).astype(bool)
            out["area"] = _numpy(item.get("area", np.zeros(n))).reshape(-1).astype(np.float64)
            if len(out["crowd"]) != n or len(out["area"]) != n:
                raise ValueError(f"MeanAveragePrecision.update: {what}[{i}]['iscrowd'/'area'] must have {n} values")
        return out

    def update(self, preds: Sequence[dict], target: Sequence[dict]) -> None:
        """Add one batch: ``preds[i]`` are the detections of the image whose truth is ``target[i]``."""
        if not isinstance(preds, (list, tuple)) or not isinstance(target, (list, tuple)):
            raise ValueError("MeanAveragePrecision.update: preds and target must be lists of dicts (one per image)")
        if len(preds) != len(target):
            raise ValueError(f"MeanAveragePrecision.update: {len(preds)} preds but {len(target)} targets")
        news = [(self._read(p, i, "preds", True), self._read(t, i, "target", False))
                for i, (p, t) in enumerate(zip(preds, target))]
        for p, t in news:
            if "segm" in self.iou_type and len(p["masks"]) and len(t["masks"]) \
                    and p["masks"].shape[1:] != t["masks"].shape[1:]:
                raise ValueError(f"MeanAveragePrecision.update: predicted masks are {p['masks'].shape[1:]} but target "
                                 f"masks {t['masks'].shape[1:]}: they must be the same size")
            self.detections.append(p)
            self.groundtruths.append(t)

    # ------------------------------------------------------------------ COCO
    def _evaluate(self, iou_type: str, categories: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """precision (T, R, K, A, M) and recall (T, K, A, M), as COCOeval.accumulate."""
        T, R, K = len(self.iou_thresholds), len(self.rec_thresholds), len(categories)
        areas, max_dets = list(AREA_RANGES.values()), self.max_detection_thresholds
        precision = -np.ones((T, R, K, len(areas), len(max_dets)))
        recall = -np.ones((T, K, len(areas), len(max_dets)))
        key = "boxes" if iou_type == "bbox" else "masks"
        for k, category in enumerate(categories):
            per_image = []  # (ious, gt area, gt crowd, dt area, dt scores) for each image
            for dt, gt in zip(self.detections, self.groundtruths):
                d = dt["labels"] == category if self.average == "macro" else np.ones(len(dt["labels"]), bool)
                g = gt["labels"] == category if self.average == "macro" else np.ones(len(gt["labels"]), bool)
                scores = dt["scores"][d]
                order = np.argsort(-scores, kind="mergesort")[:max_dets[-1]]   # COCOeval.computeIoU
                crowd = gt["crowd"][g]
                iou_fn = box_iou_xywh if iou_type == "bbox" else mask_iou
                ious = iou_fn(dt[key][d][order], gt[key][g], crowd)
                own = gt["area"][g]
                default = gt["box_area" if iou_type == "bbox" else "mask_area"][g]
                gt_area = np.where(own > 0, own, default)
                dt_area = dt["box_area" if iou_type == "bbox" else "mask_area"][d]
                per_image.append((ious, gt_area, crowd, dt_area, scores))
            for a, area_range in enumerate(areas):
                evals = [evaluate_image(ious, ga, c, da, s, area_range, max_dets[-1], self.iou_thresholds)
                         for ious, ga, c, da, s in per_image]
                for m, max_det in enumerate(max_dets):
                    precision[:, :, k, a, m], recall[:, k, a, m] = accumulate(evals, max_det, self.rec_thresholds, T)
        return precision, recall

    def _summarize(self, precision: np.ndarray, recall: np.ndarray) -> list[float]:
        """COCOeval.summarize's 12 numbers (AP at maxDets=100 as COCO, whatever the thresholds)."""
        names, md = list(AREA_RANGES), self.max_detection_thresholds

        def ap(iou: float | None = None, area: str = "all", max_det: int = 100) -> float:
            if max_det not in md:
                return -1.0
            s = precision[..., names.index(area), md.index(max_det)]
            if iou is not None:
                s = s[np.nonzero(self.iou_thresholds == iou)[0]]
            return _mean(s)

        def ar(area: str = "all", max_det: int = 100) -> float:
            return _mean(recall[..., names.index(area), md.index(max_det)]) if max_det in md else -1.0

        return [ap(), ap(0.5, max_det=md[2]), ap(0.75, max_det=md[2]), ap(area="small", max_det=md[2]),
                ap(area="medium", max_det=md[2]), ap(area="large", max_det=md[2]), ar(max_det=md[0]),
                ar(max_det=md[1]), ar(max_det=md[2]), ar("small", md[2]), ar("medium", md[2]), ar("large", md[2])]

    def compute(self) -> dict[str, Any]:
        classes = sorted(set(np.concatenate([x["labels"] for x in self.detections + self.groundtruths]).tolist())
                         ) if self.detections else []
        md = self.max_detection_thresholds
        result: dict[str, Any] = {}
        for iou_type in self.iou_type:
            prefix = "" if len(self.iou_type) == 1 else f"{iou_type}_"
            categories = classes if self.average == "macro" else [0]
            if not self.detections:
                stats = [-1.0] * 12
                precision = recall = None
            else:
                precision, recall = self._evaluate(iou_type, categories)
                stats = self._summarize(precision, recall)
            keys = ["map", "map_50", "map_75", "map_small", "map_medium", "map_large", f"mar_{md[0]}",
                    f"mar_{md[1]}", f"mar_{md[2]}", "mar_small", "mar_medium", "mar_large"]
            result.update({prefix + k: v for k, v in zip(keys, stats)})
            per_class_map = per_class_mar = np.array([-1.0])
            if self.class_metrics and self.detections:
                average, self.average = self.average, "macro"
                try:
                    p, r = self._evaluate(iou_type, classes)
                finally:
                    self.average = average
                per_class_map = np.array([_mean(p[:, :, k, 0, -1]) if 100 in md else -1.0 for k in range(len(classes))])
                per_class_mar = np.array([_mean(r[:, k, 0, -1]) for k in range(len(classes))])
            result[f"{prefix}map_per_class"] = per_class_map
            result[f"{prefix}mar_{md[2]}_per_class"] = per_class_mar
        result["classes"] = np.array(classes, dtype=np.int64)
        return result
