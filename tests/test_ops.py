"""tinyvision.ops against torchvision.ops 0.29.1 (golden fixtures made by
tests/fixtures/make_ops_fixtures.py in a separate environment) and against float64 finite
differences (tv.gradcheck); plus the errors a learner gets for bad boxes and RoIs.

Tolerance: float64 outputs and gradients agree with torchvision to 1e-10 relative (the same
arithmetic in a different order); float32 runs of the same cases to the float32 tolerance.
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

import tinyvision as tv
from tinyvision import ops
from tinyvision.kernels import dispatch
from tests.helpers import tol

FIXTURES = np.load(Path(__file__).parent / "fixtures" / "ops" / "ops.npz")


def case(name: str) -> dict:
    prefix = name + "/"
    return {k[len(prefix):]: FIXTURES[k] for k in FIXTURES.files if k.startswith(prefix)}


def close(a, b, dtype=np.float64, scale=1.0):
    np.testing.assert_allclose(a, b, **tol(dtype, scale))


def check_case(name: str, fn, inputs: list[str], grads: list[bool], dtype=np.float64, scale=1.0):
    """Run ``fn`` on the fixture's inputs, compare the output and the gradients of sum(out * u)."""
    c = case(name)
    ts = [tv.tensor(c[k].astype(dtype) if c[k].dtype.kind == "f" else c[k], requires_grad=g)
          for k, g in zip(inputs, grads)]
    out = fn(*ts)
    single = dtype == np.float32       # compared with torchvision's own float32 run
    close(out.detach().numpy(), c["out32" if single else "out"], dtype, scale)
    if "u" in c:
        (out * tv.tensor(c["u"].astype(dtype))).sum().backward()
        for i, (t, g) in enumerate(zip(ts, grads)):
            if g:
                close(t.grad.numpy(), c[f"grad32_{i}" if single else f"grad{i}"], dtype, scale)


# --------------------------------------------------------------------------- boxes

PAIRWISE = ["box_iou", "generalized_box_iou", "distance_box_iou", "complete_box_iou"]


@pytest.mark.parametrize("name", PAIRWISE)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pairwise_overlaps_equal_torchvision(name, dtype):
    check_case(name, getattr(ops, name), ["a", "b"], [True, True], dtype)


def test_batched_boxes_and_area_equal_torchvision():
    check_case("box_iou_batched", ops.generalized_box_iou, ["a", "b"], [True, True])
    check_case("box_area", ops.box_area, ["a"], [True])


@pytest.mark.parametrize("fin", ["xyxy", "xywh", "cxcywh"])
@pytest.mark.parametrize("fout", ["xyxy", "xywh", "cxcywh"])
def test_box_convert_equals_torchvision(fin, fout):
    check_case(f"box_convert_{fin}_{fout}", lambda t: ops.box_convert(t, fin, fout), ["a"], [True])


def test_clip_remove_masks_equal_torchvision():
    check_case("clip_boxes_to_image", lambda t: ops.clip_boxes_to_image(t, (20, 25)), ["a"], [True])
    c = case("remove_small_boxes")
    np.testing.assert_array_equal(ops.remove_small_boxes(tv.tensor(c["a"]), 3.0).numpy(), c["out"])
    c = case("masks_to_boxes")
    got = ops.masks_to_boxes(tv.tensor(c["a"]))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got.numpy(), c["out"])


# not complete_box_iou: CIoU holds its weight alpha constant in the backward (the paper's choice,
# and torchvision's), so its gradient is deliberately not the derivative; torchvision checks it
@pytest.mark.parametrize("name", PAIRWISE[:3])
def test_pairwise_overlaps_gradcheck(name):
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 4, (5, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 3, (5, 2))], axis=1)
    a, b = tv.tensor(boxes[:2], requires_grad=True), tv.tensor(boxes[2:], requires_grad=True)
    assert tv.gradcheck(getattr(ops, name), [a, b])


# --------------------------------------------------------------------------- losses

@pytest.mark.parametrize("name", ["generalized_box_iou_loss", "distance_box_iou_loss", "complete_box_iou_loss"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_box_losses_equal_torchvision(name, reduction):
    fn = getattr(ops, name)
    check_case(f"{name}_{reduction}", lambda a, b: fn(a, b, reduction=reduction), ["a", "b"], [True, True])


@pytest.mark.parametrize("i", range(4))
def test_sigmoid_focal_loss_equals_torchvision(i):
    c = case(f"sigmoid_focal_loss_{i}")
    fn = lambda x, y: ops.sigmoid_focal_loss(x, y, float(c["alpha"]), float(c["gamma"]), str(c["reduction"]))
    check_case(f"sigmoid_focal_loss_{i}", fn, ["a", "b"], [True, False])
    check_case(f"sigmoid_focal_loss_{i}", fn, ["a", "b"], [True, False], np.float32)


def test_losses_gradcheck():
    rng = np.random.default_rng(4)
    xy = rng.uniform(0, 4, (6, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 3, (6, 2))], axis=1)
    a, b = tv.tensor(boxes[:3], requires_grad=True), tv.tensor(boxes[3:], requires_grad=True)
    for fn in (ops.generalized_box_iou_loss, ops.distance_box_iou_loss):
        assert tv.gradcheck(lambda p, q: fn(p, q, reduction="sum"), [a, b])
    x = tv.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    y = tv.tensor((rng.random((3, 4)) > 0.5).astype(np.float64))
    assert tv.gradcheck(lambda z: ops.sigmoid_focal_loss(z, y, reduction="mean"), [x])


@pytest.mark.parametrize("rung", ["reference", "cpu"])
def test_nms_with_empty_boxes_keeps_them_as_torchvision(rung):
    """Zero-area boxes: their IoU with each other is 0 / 0 = NaN, which is not > threshold, so
    torchvision keeps all of them (and a kernel must not raise on the division)."""
    boxes = tv.tensor([[64.0, 0, 64, 64], [64.0, 0, 64, 64], [0.0, 0, 10, 10], [2.0, 2, 2, 2]])
    with dispatch.use(rung):
        keep = ops.nms(boxes, tv.tensor([0.9, 0.8, 0.7, 0.6]), 0.5)
    np.testing.assert_array_equal(keep.numpy(), [0, 1, 2, 3])


def test_empty_boxes_give_empty_results():
    empty = tv.zeros((0, 4), dtype=np.float64)
    assert ops.box_iou(empty, tv.ones((3, 4))).shape == (0, 3)
    assert ops.nms(empty, tv.zeros(0, dtype=np.float64), 0.5).shape == (0,)
    loss = ops.generalized_box_iou_loss(empty, empty, reduction="mean")
    assert float(loss.numpy()) == 0.0


# --------------------------------------------------------------------------- RoIAlign / RoIPool

ROI_ALIGN = [f"roi_align_{i}" for i in range(6)]
ROI_POOL = [f"roi_pool_{i}" for i in range(4)]


def _roi_align_fn(c):
    return lambda x: ops.roi_align(x, tv.tensor(c["rois"].astype(x.dtype)), tuple(c["output_size"]),
                                   float(c["spatial_scale"]), int(c["sampling_ratio"]), bool(c["aligned"]))


@pytest.mark.parametrize("rung", ["reference", "cpu"])
@pytest.mark.parametrize("name", ROI_ALIGN)
def test_roi_align_equals_torchvision(name, rung):
    c = case(name)
    with dispatch.use(rung):
        check_case(name, _roi_align_fn(c), ["x"], [True])
        check_case(name, _roi_align_fn(c), ["x"], [True], np.float32)


@pytest.mark.parametrize("rung", ["reference", "cpu"])
@pytest.mark.parametrize("name", ROI_POOL)
def test_roi_pool_equals_torchvision(name, rung):
    c = case(name)
    fn = lambda x: ops.roi_pool(x, tv.tensor(c["rois"].astype(x.dtype)), tuple(c["output_size"]),
                                float(c["spatial_scale"]))
    with dispatch.use(rung):
        check_case(name, fn, ["x"], [True])


def test_roi_align_takes_a_list_of_boxes_and_gradchecks():
    rng = np.random.default_rng(5)
    x = tv.tensor(rng.standard_normal((2, 2, 6, 7)), requires_grad=True)
    boxes = [tv.tensor([[0.5, 1.0, 4.2, 5.1]]), tv.tensor([[1.3, 0.2, 6.0, 3.3], [2.0, 2.0, 2.5, 2.6]])]
    rois = tv.tensor([[0, 0.5, 1.0, 4.2, 5.1], [1, 1.3, 0.2, 6.0, 3.3], [1, 2.0, 2.0, 2.5, 2.6]])
    np.testing.assert_array_equal(ops.roi_align(x, boxes, 3, 0.9, 2).detach().numpy(),
                                  ops.roi_align(x, rois, 3, 0.9, 2).detach().numpy())
    # the sample points move with x smoothly (no rounding), so finite differences apply
    assert tv.gradcheck(lambda t: ops.roi_align(t, rois, (2, 3), 0.9, -1, True), [x])
    layer = ops.RoIAlign((2, 3), 0.9, -1, True)
    np.testing.assert_array_equal(layer(x, rois).detach().numpy(),
                                  ops.roi_align(x, rois, (2, 3), 0.9, -1, True).detach().numpy())


def test_roi_pool_gradcheck():
    rng = np.random.default_rng(6)
    x = tv.tensor(rng.standard_normal((1, 2, 6, 7)), requires_grad=True)  # distinct values: no ties
    rois = tv.tensor([[0, 0.5, 1.0, 4.2, 5.1], [0, 1.3, 0.2, 6.0, 3.3]])
    assert tv.gradcheck(lambda t: ops.roi_pool(t, rois, (2, 2), 1.0), [x])


# --------------------------------------------------------------------------- FPN

@pytest.mark.parametrize("name,extra", [("fpn_pool", lambda: ops.LastLevelMaxPool()),
                                        ("fpn_p6p7", lambda: ops.LastLevelP6P7(8, 5)),
                                        ("fpn_p6p7_p5", lambda: ops.LastLevelP6P7(5, 5))])
def test_fpn_equals_torchvision(name, extra):
    c = case(name)
    fpn = ops.FeaturePyramidNetwork([4, 6, 8], 5, extra_blocks=extra())
    state = {k[len("state/"):]: v for k, v in c.items() if k.startswith("state/")}
    assert sorted(fpn.state_dict().keys()) == sorted(state)       # torchvision's keys, no more, no less
    fpn.double().load_state_dict({k: tv.tensor(v) for k, v in state.items()})
    xs = [tv.tensor(c[f"x{i}"], requires_grad=True) for i in range(3)]
    out = fpn(OrderedDict(zip(["0", "1", "2"], xs)))
    expected = [k[len("out/"):] for k in c if k.startswith("out/")]
    assert list(out.keys()) == expected
    loss = 0
    for k, v in out.items():
        close(v.detach().numpy(), c[f"out/{k}"])
        loss = loss + (v * tv.tensor(c[f"u/{k}"])).sum()
    loss.backward()
    for i, t in enumerate(xs):
        close(t.grad.numpy(), c[f"grad{i}"])


# --------------------------------------------------------------------------- bad input

def test_bad_boxes_get_clear_errors():
    good = tv.tensor([[0.0, 0.0, 2.0, 2.0]])
    with pytest.raises(ValueError, match=r"boxes2 must be \(x1, y1, x2, y2\) with x1 <= x2.*box 0"):
        ops.box_iou(good, tv.tensor([[3.0, 0.0, 1.0, 2.0]]))
    with pytest.raises(ValueError, match="boxes1 has non-finite coordinates"):
        ops.generalized_box_iou(tv.tensor([[0.0, float("nan"), 1.0, 1.0]]), good)
    with pytest.raises(ValueError, match=r"boxes must have shape \(N, 4\), got \(1, 3\)"):
        ops.nms(tv.tensor([[0.0, 0.0, 1.0]]), tv.tensor([1.0]), 0.5)
    with pytest.raises(ValueError, match=r"scores must have shape \(N,\) = \(1,\)"):
        ops.nms(good, tv.tensor([1.0, 2.0]), 0.5)
    with pytest.raises(ValueError, match="scores contain NaN"):
        ops.nms(good, tv.tensor([float("nan")]), 0.5)
    with pytest.raises(ValueError, match="in_fmt must be one of"):
        ops.box_convert(good, "xyz", "xyxy")
    with pytest.raises(ValueError, match="same shape"):
        ops.generalized_box_iou_loss(good, tv.ones((2, 4)))
    with pytest.raises(ValueError, match="alpha must be in"):
        ops.sigmoid_focal_loss(good, good, alpha=2.0)


def test_bad_rois_get_clear_errors():
    x = tv.zeros((2, 1, 4, 4))
    with pytest.raises(ValueError, match=r"RoI 1 has batch index 2.0, but input holds 2 images"):
        ops.roi_align(x, tv.tensor([[0, 0, 0, 1, 1.0], [2, 0, 0, 1, 1.0]]), 2)
    with pytest.raises(ValueError, match="batch index -1.0"):
        ops.roi_pool(x, tv.tensor([[-1, 0, 0, 1, 1.0]]), 2)
    with pytest.raises(ValueError, match="non-finite"):
        ops.roi_align(x, tv.tensor([[0, 0, float("inf"), 1, 1.0]]), 2)
    with pytest.raises(ValueError, match=r"x1 <= x2"):
        ops.roi_align(x, [tv.tensor([[3.0, 0, 1, 1]])], 2)
    with pytest.raises(ValueError, match=r"\(K, 5\)"):
        ops.roi_align(x, tv.zeros((3, 4)), 2)
    with pytest.raises(ValueError, match=r"input must be a \(N, C, H, W\)"):
        ops.roi_align(tv.zeros((1, 4, 4)), tv.zeros((0, 5)), 2)
    with pytest.raises(ValueError, match="output_size"):
        ops.roi_align(x, tv.zeros((0, 5)), 0)
    assert ops.roi_align(x, tv.zeros((0, 5)), 2).shape == (0, 1, 2, 2)
