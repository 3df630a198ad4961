"""tinyvision.metrics.segmentation against numbers torchmetrics 1.9 produced
(tests/fixtures/make_segmentation_metrics_fixtures.py) and against hand-computed cases."""
from pathlib import Path

import numpy as np
import pytest

import tinyvision as tv
from tinyvision.metrics import (JaccardIndex, MeanIoU, PanopticQuality, confusion_matrix, mean_iou,
                                panoptic_quality, per_class_iou, pixel_accuracy)

FIXTURES = np.load(Path(__file__).parent / "fixtures" / "segmentation_metrics.npz")
# name -> (num_classes, ignore_index), as in the fixture script
CASES = {"plain": (5, None), "absent": (6, None), "ignore0": (5, 0), "ignore255": (4, 255),
         "scores": (5, None), "scores_ignore255": (3, 255)}


@pytest.mark.parametrize("case", CASES)
def test_pixel_metrics_equal_torchmetrics(case):
    c, ignore = CASES[case]
    f = {k.split("/", 1)[1]: FIXTURES[k] for k in FIXTURES.files if k.startswith(case + "/")}
    metric = JaccardIndex(num_classes=c, ignore_index=ignore)
    for i in range(2):
        batch = metric(tv.tensor(f[f"pred{i}"]), f[f"target{i}"])      # a Tensor or an array both work
        assert batch == pytest.approx(float(f[f"batch_miou{i}"]), rel=1e-6)
    # accumulated over both batches = the metric on both batches stacked
    pred = np.concatenate([f["pred0"], f["pred1"]])
    target = np.concatenate([f["target0"], f["target1"]])
    np.testing.assert_array_equal(metric.confmat, f["confmat"])
    np.testing.assert_array_equal(confusion_matrix(pred, target, c, ignore), f["confmat"])
    assert metric.compute() == pytest.approx(float(f["miou"]), rel=1e-6)
    assert mean_iou(pred, target, c, ignore_index=ignore) == pytest.approx(float(f["miou"]), rel=1e-6)
    np.testing.assert_allclose(per_class_iou(pred, target, c, ignore), f["iou"], rtol=1e-6)
    np.testing.assert_allclose(metric.per_class(), f["iou"], rtol=1e-6)
    assert pixel_accuracy(pred, target, c, ignore) == pytest.approx(float(f["acc"]), rel=1e-6)
    assert metric.pixel_accuracy() == pytest.approx(float(f["acc"]), rel=1e-6)
    metric.reset()
    assert metric.confmat.sum() == 0


def test_mean_iou_by_hand():
    """Classes 0..3; 3 absent from both (left out of the mean), 2 only predicted (IoU 0)."""
    pred = np.array([0, 0, 1, 1, 2, 2])
    target = np.array([0, 1, 1, 1, 0, 0])
    # IoU_0 = 1 / (2 + 3 - 1), IoU_1 = 2 / (2 + 3 - 2), IoU_2 = 0
    np.testing.assert_allclose(per_class_iou(pred, target, 4), [0.25, 2 / 3, 0, 0])
    assert mean_iou(pred, target, 4) == pytest.approx((0.25 + 2 / 3) / 3)
    # ignore_index=0 drops the pixels whose target is 0 and class 0 from the mean: only class 1
    assert mean_iou(pred, target, 4, ignore_index=0) == pytest.approx(2 / 3)
    assert pixel_accuracy(pred, target, 4) == pytest.approx(3 / 6)
    assert MeanIoU is JaccardIndex


def test_bad_input():
    with pytest.raises(ValueError, match=r"target holds classes in \[0, 7\], outside \[0, num_classes=4\)"):
        mean_iou(np.zeros(3, np.int64), np.array([0, 7, 1]), 4)
    with pytest.raises(ValueError, match=r"pred \(2, 5\) must have the target's shape \(2, 4\)"):
        mean_iou(np.zeros((2, 5), np.int64), np.zeros((2, 4), np.int64), 3)
    with pytest.raises(ValueError, match="have 4 classes on dim 1, expected num_classes=3"):
        mean_iou(np.zeros((2, 4, 5)), np.zeros((2, 5), np.int64), 3)
    with pytest.raises(TypeError, match="must be integers"):
        mean_iou(np.zeros((2, 5)), np.zeros((2, 5), np.int64), 3)


def _segments(cat, inst):
    ids = [s for s in np.unique(inst) if s > 0]
    masks = np.stack([inst == s for s in ids]) if ids else np.zeros((0,) + inst.shape, bool)
    return {"masks": masks, "labels": np.array([cat[inst == s][0] for s in ids], dtype=np.int64)}


def test_panoptic_quality_equals_torchmetrics():
    preds = [_segments(c, i) for c, i in zip(FIXTURES["pq/pred_cat"], FIXTURES["pq/pred_inst"])]
    target = [_segments(c, i) for c, i in zip(FIXTURES["pq/target_cat"], FIXTURES["pq/target_inst"])]
    metric = PanopticQuality()
    metric.update(preds[:7], target[:7])
    metric.update(preds[7:], target[7:])              # accumulated over batches
    classes, values = metric.per_class()
    np.testing.assert_array_equal(classes, [1, 2, 3])
    np.testing.assert_allclose(values, FIXTURES["pq/things_pq_sq_rq"], rtol=1e-6)
    result = panoptic_quality(preds, target)
    np.testing.assert_allclose([result["pq"], result["sq"], result["rq"]], values.mean(axis=1), rtol=1e-12)
    assert 0.2 < result["pq"] < 0.8                  # the fixture has matches and misses


def test_panoptic_quality_by_hand():
    """One image: a true square matched (IoU 12/16 = 0.75) and one missed; one spurious prediction."""
    t = np.zeros((2, 8, 8), bool)
    t[0, 0:4, 0:4] = True
    t[1, 5:8, 5:8] = True
    p = np.zeros((2, 8, 8), bool)
    p[0, 0:4, 0:3] = True                           # 12 px inside the 16 px square
    p[1, 5:8, 0:2] = True                           # nothing there
    r = panoptic_quality([{"masks": p, "labels": [1, 1]}], [{"masks": t, "labels": [1, 1]}])
    # TP 1 (IoU 0.75), FP 1, FN 1: SQ 0.75, RQ 1 / (1 + 0.5 + 0.5) = 0.5
    assert r == pytest.approx({"pq": 0.375, "sq": 0.75, "rq": 0.5})
    with pytest.raises(ValueError, match="masks overlap"):
        panoptic_quality([{"masks": np.ones((2, 8, 8), bool), "labels": [1, 1]}], [{"masks": t, "labels": [1, 1]}])


def test_scores_that_require_grad_are_read_without_detaching():
    scores = tv.tensor(np.random.default_rng(0).standard_normal((2, 3, 4, 5)), requires_grad=True)
    target = np.random.default_rng(1).integers(0, 3, (2, 4, 5))
    metric = JaccardIndex(num_classes=3)
    metric.update(scores * 2.0, target)        # a graph member, as a model's output in training
    assert metric.compute() == pytest.approx(mean_iou(scores.detach().numpy().argmax(1), target, 3))
