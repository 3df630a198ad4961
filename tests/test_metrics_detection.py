"""tinyvision.metrics.MeanAveragePrecision against torchmetrics' (pycocotools backend, i.e.
COCOeval) on 50 random cases (fixtures: tests/fixtures/make_detection_metrics_fixtures.py): ties
in score within and across images, duplicates, empty images, images without detections, classes
without ground truth, crowd boxes, every area range, other maxDets, xywh boxes, masks and average='micro'. All 12
COCO numbers (and the per-class values) must be equal: torchmetrics hands COCOeval's float64
results out as float32, so ours, rounded to float32, must be the very same float32 numbers.
Plus a case computed by hand and the errors for bad input."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tinyvision as tv
from tinyvision.metrics import MeanAveragePrecision
from tinyvision.metrics.detection import IOU_THRESHOLDS, REC_THRESHOLDS

F = np.load(Path(__file__).parent / "fixtures" / "detection_metrics.npz")
KEYS = ["map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_{0}", "mar_{1}", "mar_{2}",
        "mar_small", "mar_medium", "mar_large"]


def unpack(c: int, side: str, keys: list[str], size: int | None) -> list[dict]:
    counts = F[f"{c}/{side}_counts"]
    splits = np.cumsum(counts)[:-1]
    out = [dict() for _ in counts]
    for k in keys:
        name = f"{c}/{side}_{k}"
        if name not in F.files:
            continue
        flat = F[name]
        if k == "masks":
            flat = np.unpackbits(flat)[:counts.sum() * size * size].reshape(-1, size, size).astype(bool)
        for d, part in zip(out, np.split(flat, splits)):
            d[k] = part.reshape(-1, 4) if k == "boxes" else part
    return out


def test_default_thresholds_are_torchmetrics():
    np.testing.assert_array_equal(IOU_THRESHOLDS, F["iou_thresholds"])
    np.testing.assert_array_equal(REC_THRESHOLDS, F["rec_thresholds"])


@pytest.mark.parametrize("c", range(int(F["n_cases"])))
def test_equals_torchmetrics_and_pycocotools(c):
    box_format, iou_type, class_metrics, average = F[f"{c}/options"].tolist()
    md = F[f"{c}/max_dets"].tolist()
    size = 40 if iou_type == "segm" else None
    preds = unpack(c, "p", ["boxes", "scores", "labels", "masks"], size)
    target = unpack(c, "t", ["boxes", "labels", "iscrowd", "masks"], size)
    metric = MeanAveragePrecision(box_format=box_format, iou_type=iou_type, max_detection_thresholds=md,
                                  class_metrics=class_metrics == "True", average=average)
    # two batches: update accumulates
    half = len(preds) // 2
    metric.update(preds[:half], target[:half])
    metric.update(preds[half:], target[half:])
    res = metric.compute()
    got = [res[k.format(*md)] for k in KEYS]
    np.testing.assert_array_equal(np.float32(got), F[f"{c}/stats"])
    np.testing.assert_array_equal(res["classes"], F[f"{c}/classes"])
    np.testing.assert_array_equal(np.float32(res["map_per_class"]), F[f"{c}/map_per_class"])
    np.testing.assert_array_equal(np.float32(res[f"mar_{md[-1]}_per_class"]), F[f"{c}/mar_per_class"])


def test_a_case_by_hand():
    """One class, two images, three truths, four detections (scores .9 .8 .7 .6):
    image 0: truths A, B; det .9 hits A (IoU 1), det .7 hits A again (a duplicate: FP), det .6 misses.
    image 1: truth C; det .8 hits C (IoU 1).
    By score: TP, TP, FP, FP -> recall 1/3, 2/3, 2/3, 2/3; precision 1, 1, 2/3, 1/2.
    Interpolated precision is 1 up to recall 2/3 and 0 beyond (never reached): the 101 points
    0, .01, ..., .66 read 1 (67 points) -> AP = 67 / 101 at every IoU threshold."""
    A, B, C = [0, 0, 10, 10], [20, 20, 30, 30], [5, 5, 15, 15]
    target = [dict(boxes=tv.tensor([A, B], dtype=tv.float64), labels=tv.tensor([1, 1])),
              dict(boxes=tv.tensor([C], dtype=tv.float64), labels=tv.tensor([1]))]
    preds = [dict(boxes=tv.tensor([A, A, [50, 50, 60, 60]], dtype=tv.float64), scores=tv.tensor([0.9, 0.7, 0.6]),
                  labels=tv.tensor([1, 1, 1])),
             dict(boxes=tv.tensor([C], dtype=tv.float64), scores=tv.tensor([0.8]), labels=tv.tensor([1]))]
    metric = MeanAveragePrecision()
    metric.update(preds, target)
    res = metric.compute()
    assert res["map"] == pytest.approx(67 / 101) and res["map_50"] == pytest.approx(67 / 101)
    assert res["mar_100"] == pytest.approx(2 / 3) and res["mar_1"] == pytest.approx(2 / 3)
    assert res["map_medium"] == -1 and res["map_small"] == pytest.approx(67 / 101)   # all boxes are small


def test_no_images_and_empty_images():
    metric = MeanAveragePrecision()
    assert metric.compute()["map"] == -1
    metric.update([dict(boxes=np.zeros((0, 4)), scores=np.zeros(0), labels=np.zeros(0, int))],
                  [dict(boxes=np.array([[0, 0, 5, 5.0]]), labels=np.array([0]))])
    res = metric.compute()
    assert res["map"] == 0 and res["mar_100"] == 0          # a missed object: AP 0, not -1


def test_bad_input_gets_clear_errors():
    metric = MeanAveragePrecision()
    good_p = dict(boxes=np.zeros((1, 4)), scores=np.ones(1), labels=np.zeros(1, int))
    good_t = dict(boxes=np.zeros((1, 4)), labels=np.zeros(1, int))
    with pytest.raises(ValueError, match=r"preds\[0\]\['boxes'\] must be \(2, 4\)"):
        metric.update([dict(good_p, labels=np.zeros(2, int), scores=np.ones(2))], [good_t])
    with pytest.raises(ValueError, match=r"target\[0\] lacks \['labels'\]"):
        metric.update([good_p], [dict(boxes=np.zeros((1, 4)))])
    with pytest.raises(ValueError, match="1 preds but 2 targets"):
        metric.update([good_p], [good_t, good_t])
    with pytest.raises(ValueError, match="NaN"):
        metric.update([dict(good_p, boxes=np.full((1, 4), np.nan))], [good_t])
    segm = MeanAveragePrecision(iou_type="segm")
    with pytest.raises(ValueError, match=r"predicted masks are \(4, 4\) but target masks \(5, 5\)"):
        segm.update([dict(good_p, masks=np.ones((1, 4, 4)))], [dict(good_t, masks=np.ones((1, 5, 5)))])
    with pytest.raises(ValueError, match="iou_type"):
        MeanAveragePrecision(iou_type="keypoints")
