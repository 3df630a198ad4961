"""Detection machinery and models against torchvision 0.29.1 (fixtures made by
tests/fixtures/make_detection_fixtures.py): anchors, box coder, matcher; RetinaNet with ResNet-50
and ResNet-18 FPN backbones in float64, same keys and seeded weights: the raw head outputs, the
anchors, the final detections, and in train mode the two losses (with an image without objects)
and parameter gradients. Tolerance: float64, relative to each quantity's largest magnitude
(1e-10 for outputs; the loss sums thousands of anchors, 1e-9)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tinyvision as tv
from tinyvision.models import create_model
from tinyvision.models.detection._utils import BalancedPositiveNegativeSampler, BoxCoder, Matcher
from tinyvision.models.detection.anchor_utils import AnchorGenerator
from tests.fixtures.seeded import seeded_state_dict

FIX = Path(__file__).parent / "fixtures" / "detection"
M = np.load(FIX / "machinery.npz")


def close(ours, theirs, rel=1e-10):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    if theirs.dtype == np.float32:
        # torchvision's RPN makes its objectness labels float32 (even for float64 models), so its
        # objectness loss comes out in float32: compare that one at float32 precision
        rel = max(rel, 1e-6)
    assert ours.shape == theirs.shape, f"shape {ours.shape}, torchvision {theirs.shape}"
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=rel * max(np.abs(theirs).max(initial=0), 1e-300))


# --------------------------------------------------------------------------- machinery

def test_anchor_generator_cell_anchors():
    gen = AnchorGenerator(((16, 20, 25), (32,)), ((0.5, 1.0, 2.0), (1.0, 3.0)))
    np.testing.assert_array_equal(gen.cell_anchors[0], M["cell0"])
    np.testing.assert_array_equal(gen.cell_anchors[1], M["cell1"])
    assert gen.num_anchors_per_location() == [9, 2]


@pytest.mark.parametrize("name,weights", [("coder1", (1.0, 1.0, 1.0, 1.0)), ("coder10", (10.0, 10.0, 5.0, 5.0))])
def test_box_coder(name, weights):
    coder = BoxCoder(weights)
    close(coder.decode_single(tv.tensor(M["codes"]), tv.tensor(M["boxes"])).numpy(), M[f"{name}_decoded"])
    close(coder.encode_single(tv.tensor(M["boxes"][::-1].copy()), tv.tensor(M["boxes"])).numpy(), M[f"{name}_encoded"])


@pytest.mark.parametrize("name,args", [("match_rpn", (0.7, 0.3, True)), ("match_retina", (0.5, 0.4, True)),
                                       ("match_roi", (0.5, 0.5, False))])
def test_matcher(name, args):
    np.testing.assert_array_equal(Matcher(*args)(tv.tensor(M["iou"])).numpy(), M[name])


def test_matcher_and_sampler_edge_cases():
    with pytest.raises(ValueError, match="no ground-truth boxes"):
        Matcher(0.5, 0.4)(tv.zeros((0, 5)))
    with pytest.raises(ValueError, match="low_threshold"):
        Matcher(0.3, 0.5)
    tv.manual_seed(0)
    matched = tv.tensor(np.array([0, 1, 2, 0, 0, -1, 3, 0, 0, 0]))
    pos, neg = BalancedPositiveNegativeSampler(4, 0.25)([matched])
    pos, neg = pos[0].numpy().astype(bool), neg[0].numpy().astype(bool)
    assert pos.sum() == 1 and neg.sum() == 3                       # 4 examples, a quarter positive
    assert (matched.numpy()[pos] >= 1).all() and (matched.numpy()[neg] == 0).all()


# --------------------------------------------------------------------------- RetinaNet

def load(name: str, **kwargs):
    ref = np.load(FIX / f"{name}.npz")
    model = create_model(name, num_classes=4, **{"min_size": 64, "max_size": 64, **kwargs}).double()
    keys = ref["keys"].tolist()
    assert list(model.state_dict().keys()) == keys                  # torchvision's keys, in its order
    shapes = {k: tuple(eval(s)) for k, s in zip(keys, ref["shapes"].tolist())}
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == shapes
    weights = seeded_state_dict(shapes, 0)
    model.load_state_dict({k: tv.tensor(v.astype(np.int64) if k.endswith("num_batches_tracked") else v)
                           for k, v in weights.items()})
    rng = np.random.default_rng([0, 7])
    images = [tv.tensor(rng.random((3, 64, 64))), tv.tensor(rng.random((3, 48, 64)))]
    return model, ref, images


# The default run keeps one eval test (RetinaNet) and one train test (Mask R-CNN, which runs every
# code path of Faster R-CNN too) within the suite's time budget; the rest, ResNet-50 (the builders
# torchvision ships) included, run in the slow run (`make test-slow`).
SLOW = pytest.mark.slow
MODELS = ["retinanet_resnet18_fpn", pytest.param("retinanet_resnet50_fpn", marks=SLOW)]


@pytest.mark.parametrize("name", MODELS)
def test_retinanet_eval_equals_torchvision(name):
    model, ref, images = load(name)
    model.eval()
    with tv.no_grad():
        image_list, _ = model.transform(images)
        features = list(model.backbone(image_list.tensors).values())
        head = model.head(features)
        anchors = model.anchor_generator(image_list, features)
        detections = model(images)
    close(head["cls_logits"].numpy(), ref["cls_logits"])
    close(head["bbox_regression"].numpy(), ref["bbox_regression"])
    np.testing.assert_array_equal(anchors[0].numpy(), ref["anchors"])
    for i, d in enumerate(detections):
        assert len(d["boxes"]) == len(ref[f"det{i}_boxes"]) > 0
        np.testing.assert_array_equal(d["labels"].numpy(), ref[f"det{i}_labels"])
        close(d["scores"].numpy(), ref[f"det{i}_scores"])
        close(d["boxes"].numpy(), ref[f"det{i}_boxes"])


@pytest.mark.parametrize("name", [pytest.param(m, marks=SLOW) for m in ("retinanet_resnet18_fpn",
                                                                         "retinanet_resnet50_fpn")])
def test_retinanet_train_losses_and_gradients_equal_torchvision(name):
    model, ref, images = load(name)
    model.train()
    targets = [{"boxes": tv.tensor([[4.0, 6.0, 30.5, 28.0], [20.0, 18.0, 60.0, 62.0], [40.0, 2.0, 52.0, 14.0]],
                                   dtype=tv.float64), "labels": tv.tensor([1, 3, 2])},
               {"boxes": tv.zeros((0, 4), dtype=tv.float64), "labels": tv.zeros(0, dtype=tv.int64)}]
    losses = model(images, targets)
    assert set(losses) == {"classification", "bbox_regression"}
    for k, v in losses.items():
        close(v.item(), ref[f"loss_{k}"], 1e-9)
    (losses["classification"] + losses["bbox_regression"]).backward()
    params = dict(model.named_parameters())
    for key in [k for k in ref.files if k.startswith("grad")]:
        kind, pname = key.split("/", 1)
        g = params[pname].grad.numpy()
        want = ref[key]
        got = {"grad": g, "gradsample": g.reshape(-1)[::97], "gradnorm": np.linalg.norm(g)}[kind]
        close(got, want, 1e-8)


def test_retinanet_bad_targets():
    model = create_model("retinanet_resnet18_fpn", num_classes=4, min_size=64, max_size=64, fpn_channels=8)
    image = [tv.zeros((3, 64, 64))]
    with pytest.raises(ValueError, match="targets should not be None"):
        model(image)
    with pytest.raises(ValueError, match="positive height and width"):
        model(image, [{"boxes": tv.tensor([[5.0, 5.0, 3.0, 9.0]]), "labels": tv.tensor([1])}])
    with pytest.raises(ValueError, match="NaN"):
        model(image, [{"boxes": tv.tensor([[5.0, float("nan"), 8.0, 9.0]]), "labels": tv.tensor([1])}])
    with pytest.raises(ValueError, match="1 boxes but 2 labels"):
        model(image, [{"boxes": tv.tensor([[1.0, 1.0, 8.0, 9.0]]), "labels": tv.tensor([1, 2])}])


# --------------------------------------------------------------------------- Faster / Mask R-CNN

RCNN = dict(min_size=64, max_size=64, rpn_batch_size_per_image=100000, box_batch_size_per_image=100000)
RCNN_SLOW = [pytest.param(m, marks=SLOW) for m in ("fasterrcnn_resnet18_fpn", "fasterrcnn_resnet50_fpn",
                                                  "maskrcnn_resnet50_fpn")]


@pytest.mark.parametrize("name", [pytest.param("maskrcnn_resnet18_fpn", marks=SLOW)] + RCNN_SLOW)
def test_rcnn_eval_equals_torchvision(name):
    """Both stages' raw outputs (RPN objectness and offsets, the proposals, the pooled features,
    class logits, box offsets, mask logits) and the final detections (masks pasted) equal."""
    model, ref, images = load(name, **RCNN)
    model.eval()
    with tv.no_grad():
        image_list, _ = model.transform(images)
        features = model.backbone(image_list.tensors)
        from tinyvision.models.detection.rpn import concat_box_prediction_layers
        objectness, deltas = concat_box_prediction_layers(*model.rpn.head(list(features.values())))
        close(objectness.numpy(), ref["rpn_objectness"])
        close(deltas.numpy(), ref["rpn_deltas"])
        proposals, _ = model.rpn(image_list, features)
        for i, p in enumerate(proposals):
            close(p.numpy(), ref[f"proposals{i}"])
        heads = model.roi_heads
        pooled = heads.box_roi_pool(features, proposals, image_list.image_sizes)
        close(pooled.sum(dim=(1, 2, 3)).numpy(), ref["box_features_sum"])
        class_logits, box_regression = heads.box_predictor(heads.box_head(pooled))
        close(class_logits.numpy(), ref["class_logits"])
        close(box_regression.numpy(), ref["box_regression"])
        if "mask" in name:
            detections, _ = heads(features, proposals, image_list.image_sizes)
            logits = heads.mask_predictor(heads.mask_head(heads.mask_roi_pool(
                features, [d["boxes"] for d in detections], image_list.image_sizes)))
            close(logits.numpy().sum(axis=(2, 3)), ref["mask_logits_sum"])
            close(logits.numpy().reshape(-1)[::37], ref["mask_logits_sample"])
        detections = model(images)
    for i, d in enumerate(detections):
        assert len(d["boxes"]) == len(ref[f"det{i}_boxes"]) > 0
        np.testing.assert_array_equal(d["labels"].numpy(), ref[f"det{i}_labels"])
        close(d["scores"].numpy(), ref[f"det{i}_scores"])
        close(d["boxes"].numpy(), ref[f"det{i}_boxes"])
        if "mask" in name:
            masks = d["masks"].numpy()
            assert masks.shape == (len(d["boxes"]), 1) + tuple(images[i].shape[-2:])
            close(masks.sum(axis=(1, 2, 3)), ref[f"det{i}_masksum"])
            close(masks.reshape(-1)[::101], ref[f"det{i}_masksample"])


@pytest.mark.parametrize("name", ["maskrcnn_resnet18_fpn"] + RCNN_SLOW)
def test_rcnn_train_losses_and_gradients_equal_torchvision(name):
    """Train mode with every anchor and proposal sampled (deterministic), one image without
    objects: the four (five) losses and parameter gradients equal torchvision's."""
    model, ref, images = load(name, **RCNN)
    model.train()
    boxes = [[4.0, 6.0, 30.5, 28.0], [20.0, 18.0, 60.0, 62.0], [40.0, 2.0, 52.0, 14.0]]
    targets = [{"boxes": tv.tensor(boxes, dtype=tv.float64), "labels": tv.tensor([1, 3, 2])},
               {"boxes": tv.zeros((0, 4), dtype=tv.float64), "labels": tv.zeros(0, dtype=tv.int64)}]
    if "mask" in name:
        masks = np.zeros((3, 64, 64), dtype=np.uint8)
        for i, (x1, y1, x2, y2) in enumerate(np.array(boxes).astype(int)):
            masks[i, y1:y2, x1:x2] = 1
            masks[i, y1:(y1 + y2) // 2, x1:(x1 + x2) // 2] = 0
        targets[0]["masks"] = tv.tensor(masks)
        targets[1]["masks"] = tv.zeros((0, 48, 64), dtype=tv.uint8)
    losses = model(images, targets)
    expected = {k[len("loss_"):] for k in ref.files if k.startswith("loss_")}
    assert set(losses) == expected
    for k, v in losses.items():
        close(v.item(), ref[f"loss_{k}"], 1e-9)
    sum(list(losses.values())[1:], list(losses.values())[0]).backward()
    params = dict(model.named_parameters())
    for key in [k for k in ref.files if k.startswith("grad")]:
        kind, pname = key.split("/", 1)
        g = params[pname].grad.numpy()
        got = {"grad": g, "gradsample": g.reshape(-1)[::97], "gradnorm": np.linalg.norm(g)}[kind]
        close(got, ref[key], 1e-8)
