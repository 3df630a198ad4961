"""MaskFormer (mask classification): the mask matcher, the mask set loss, the model and its
semantic / panoptic inference.

Oracles: the formulas written here in PyTorch on the same tensors (focal and Dice costs and
losses, torch's nearest resize, the semantic einsum), brute force over every assignment for the
matcher, float64 finite differences, and hand-made outputs whose panoptic answer is known.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyvision as tv
from tinyvision.models import create_model
from tinyvision.models.detection.detr_matcher import HungarianMatcher
from tinyvision.models.detection.mask_matching import MaskHungarianMatcher, MaskSetCriterion, resize_masks
from tinyvision.models.maskformer import MaskFormer


def torch_focal(logits, t, alpha=0.25, gamma=2):
    """Elementwise sigmoid focal loss (RetinaNet's formula), logits and t of one shape."""
    p = logits.sigmoid()
    ce = TF.binary_cross_entropy_with_logits(logits, t, reduction="none")
    return (alpha * t + (1 - alpha) * (1 - t)) * ce * ((1 - p) * t + p * (1 - t)) ** gamma


def torch_dice(logits, t):
    s = logits.sigmoid()
    return 1 - (2 * (s * t).sum(-1) + 1) / (s.sum(-1) + t.sum(-1) + 1)


def torch_mask_cost(logits, masks, labels, tmasks):
    """C (Q, M) by broadcasting the per-pair losses (no matrix products): an independent path."""
    m, t = masks.flatten(1)[:, None, :], tmasks.flatten(1)[None, :, :].to(masks.dtype)
    return (-logits.softmax(-1)[:, labels] + 20 * torch_focal(m.expand(-1, t.shape[1], -1), t.expand(m.shape[0], -1, -1)).mean(-1)
            + torch_dice(m, t))


def random_case(rng, n, q, c, sizes, h=4, w=4):
    logits = rng.standard_normal((n, q, c + 1))
    masks = 2 * rng.standard_normal((n, q, h, w))
    targets = [{"labels": rng.integers(0, c, m).astype(np.int64), "masks": rng.random((m, h, w)) < 0.4} for m in sizes]
    return logits, masks, targets


def test_resize_masks_is_torch_nearest():
    masks = np.random.default_rng(0).random((2, 10, 7)) < 0.5
    for size in ((5, 3), (4, 4), (20, 14)):
        ref = TF.interpolate(torch.tensor(masks[:, None].astype(np.float64)), size=size, mode="nearest")[:, 0]
        np.testing.assert_array_equal(resize_masks(masks, size), ref.numpy() > 0.5)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2 ** 31), q=st.integers(1, 5), m=st.integers(0, 5))
def test_mask_matcher_equals_brute_force(seed, q, m):
    m = min(m, q)
    rng = np.random.default_rng(seed)
    logits, masks, targets = random_case(rng, 1, q, 3, [m])
    matcher = MaskHungarianMatcher()
    rows, cols = matcher({"pred_logits": logits, "pred_masks": masks}, targets)[0]
    assert len(rows) == m and sorted(cols.tolist()) == list(range(m))
    if m == 0:
        return
    cost = torch_mask_cost(torch.tensor(logits[0]), torch.tensor(masks[0]), torch.tensor(targets[0]["labels"]),
                           torch.tensor(targets[0]["masks"])).numpy()
    np.testing.assert_allclose(matcher.cost_matrix(logits[0], masks[0], targets[0]["labels"], targets[0]["masks"]),
                               cost, rtol=1e-10, atol=1e-12)
    best = min(sum(cost[p[j], j] for j in range(m)) for p in itertools.permutations(range(q), m))
    assert abs(cost[rows, cols].sum() - best) < 1e-10


@pytest.mark.parametrize("sizes", [[2, 3], [0, 1], [0, 0]])
def test_mask_criterion_equals_torch_formulas(sizes):
    rng = np.random.default_rng(10 + sum(sizes))
    logits, masks, targets = random_case(rng, 2, 4, 3, sizes)
    ours = [tv.tensor(a, requires_grad=True) for a in (logits, masks)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (logits, masks)]
    criterion = MaskSetCriterion(3)
    losses = criterion({"pred_logits": ours[0], "pred_masks": ours[1]}, targets)
    total = criterion.total(losses)
    indices = MaskHungarianMatcher()({"pred_logits": logits, "pred_masks": masks}, targets)
    # torch: weighted CE over all queries, focal (mean over pixels) and Dice over the matched pairs
    target_classes = torch.full((2, 4), 3, dtype=torch.int64)
    src, tgt = [], []
    for i, (rows, cols) in enumerate(indices):
        target_classes[i, torch.as_tensor(rows)] = torch.as_tensor(targets[i]["labels"][cols])
        src.append(theirs[1][i, torch.as_tensor(rows)].flatten(1))
        tgt.append(torch.as_tensor(targets[i]["masks"][cols].reshape(len(cols), 16), dtype=torch.float64))
    weight = torch.tensor([1.0, 1.0, 1.0, 0.1], dtype=torch.float64)
    ce = TF.cross_entropy(theirs[0].reshape(8, 4), target_classes.reshape(-1), weight=weight)
    num = max(sum(sizes), 1)
    src, tgt = torch.cat(src), torch.cat(tgt)
    focal = torch_focal(src, tgt).mean(1).sum() / num
    dice = torch_dice(src, tgt).sum() / num
    for name, ref in (("loss_ce", ce), ("loss_mask", focal), ("loss_dice", dice)):
        np.testing.assert_allclose(losses[name].item(), ref.item(), rtol=1e-10, atol=1e-12, err_msg=name)
    ref_total = ce + 20 * focal + dice
    np.testing.assert_allclose(total.item(), ref_total.item(), rtol=1e-10, atol=1e-12)
    total.backward()
    ref_total.backward()
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_mask_criterion_gradcheck_and_errors():
    rng = np.random.default_rng(3)
    logits, masks, targets = random_case(rng, 1, 3, 2, [2], h=3, w=3)
    criterion = MaskSetCriterion(2)
    tv.gradcheck(lambda lg, m: criterion.total(criterion({"pred_logits": lg, "pred_masks": m}, targets)),
                 [tv.tensor(logits, requires_grad=True), tv.tensor(masks, requires_grad=True)])
    logits, masks, targets = random_case(rng, 1, 2, 2, [3])
    with pytest.raises(ValueError, match="3 segments but the model has only 2 queries"):
        criterion({"pred_logits": tv.tensor(logits), "pred_masks": tv.tensor(masks)}, targets)


def test_maskformer_outputs_and_semantic_inference():
    tv.manual_seed(0)
    model = create_model("maskformer_resnet18", num_classes=4, num_queries=6, hidden_dim=16, mask_dim=8, nheads=2,
                         dec_layers=2, dim_feedforward=16)
    model.eval()
    with tv.no_grad():
        out = model(tv.tensor(np.random.default_rng(0).random((2, 3, 32, 32)).astype(np.float32)))
    assert tuple(out["pred_logits"].shape) == (2, 6, 5) and tuple(out["pred_masks"].shape) == (2, 6, 8, 8)
    assert len(out["aux_outputs"]) == 1
    sem = MaskFormer.semantic(out, (32, 32))
    p = torch.tensor(out["pred_logits"].numpy(), dtype=torch.float64).softmax(-1)[..., :-1]
    m = TF.interpolate(torch.tensor(out["pred_masks"].numpy()), size=(32, 32), mode="bilinear").double().sigmoid()
    np.testing.assert_allclose(sem, torch.einsum("nqc,nqhw->nchw", p, m).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.slow   # a ResNet18 training step and validation: several seconds
def test_panoptic_module_step():
    """The panoptic task's module on two shapes scenes: a training step and panoptic quality."""
    from tinyvision.data import shapes_scenes
    from tinyvision.train.detect import collate
    from tinyvision.train.setpred import MaskClassifier

    tv.manual_seed(0)
    model = create_model("maskformer_resnet18", num_classes=4, num_queries=6, hidden_dim=16, mask_dim=8, nheads=2,
                         dec_layers=2, dim_feedforward=16)
    module = MaskClassifier(model, MaskSetCriterion(4), lambda p: tv.optim.AdamW(p, lr=1e-3))
    scenes = shapes_scenes(2, 32, seed=0)
    batch = collate([scenes[0], scenes[1]])
    out = module.training_step(batch, 0)
    assert set(out) == {"loss", "loss_ce", "loss_mask", "loss_dice"} and np.isfinite(out["loss"].item())
    module.on_validation_epoch_start()
    module.validation_step(batch, 0)
    assert set(module.on_validation_epoch_end()) == {"pq", "sq", "rq"}


def test_panoptic_inference_on_known_outputs():
    """Query 0: class 1 on the left half; query 1: class 2 on the right half; query 2: a duplicate
    of query 0, less sure; query 3: 'no object'. Expect exactly two segments, the two halves."""
    big = 20.0
    logits = np.full((1, 4, 4), -big)
    logits[0, 0, 1] = logits[0, 1, 2] = big
    logits[0, 2, 1], logits[0, 2, 3] = 1.0, 0.5
    logits[0, 3, 3] = big
    left = np.where(np.arange(8) < 4, big, -big)[None, :].repeat(8, 0)
    masks = np.stack([left, -left, left, left])[None]
    segments = MaskFormer.panoptic({"pred_logits": tv.tensor(logits), "pred_masks": tv.tensor(masks)}, (8, 8))[0]
    assert segments["labels"].tolist() == [1, 2]
    np.testing.assert_array_equal(segments["masks"][0], left > 0)
    np.testing.assert_array_equal(segments["masks"][1], left < 0)
