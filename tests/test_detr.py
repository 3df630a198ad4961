"""DETR: position encoding, transformer layers, HungarianMatcher, SetCriterion, the model.

Oracles: the same formulas written here in PyTorch on the same tensors and weights (the
reference implementation's equations: position encoding, post-norm layers with positions added
to q and k, the matcher's cost, the set loss), brute force over all assignments for the matcher,
and float64 finite differences (tv.gradcheck).
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyvision as tv
from tinyvision.models import create_model
from tinyvision.models.detection.detr_criterion import SetCriterion
from tinyvision.models.detection.detr_matcher import HungarianMatcher
from tinyvision.models.detection.detr_transformer import Transformer
from tinyvision.models.detection.position_encoding import PositionEmbeddingSine
from tests.helpers import DTYPES, tol


# ----------------------------------------------------------------------------- torch oracles

def torch_sine(mask: torch.Tensor, d: int, temperature: float = 10000, scale: float = 2 * math.pi) -> torch.Tensor:
    """The reference's normalised sine encoding, written out in torch; mask (N, H, W) True = pad."""
    not_mask = (~mask).to(torch.float64)
    y, x = not_mask.cumsum(1), not_mask.cumsum(2)
    y = y / (y[:, -1:, :] + 1e-6) * scale
    x = x / (x[:, :, -1:] + 1e-6) * scale
    dim_t = temperature ** (2 * (torch.arange(d, dtype=torch.float64) // 2) / d)
    px, py = x[..., None] / dim_t, y[..., None] / dim_t
    px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), dim=4).flatten(3)
    py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), dim=4).flatten(3)
    return torch.cat((py, px), dim=3).permute(0, 3, 1, 2)


def torch_mha(p: dict, prefix: str, q, k, v, nhead: int):
    return TF.multi_head_attention_forward(
        q, k, v, q.shape[-1], nhead, p[prefix + "in_proj_weight"], p[prefix + "in_proj_bias"], None, None, False,
        0.0, p[prefix + "out_proj.weight"], p[prefix + "out_proj.bias"], training=False, need_weights=False)[0]


def torch_detr_transformer(p: dict, src, pos, query, nhead: int, n_enc: int, n_dec: int):
    """DETR's post-norm encoder-decoder in torch: src/pos (N, E, H, W), query (Q, E) -> hs (L, N, Q, E)."""
    n, e = src.shape[:2]
    ln = lambda x, k: TF.layer_norm(x, (e,), p[k + ".weight"], p[k + ".bias"])
    ffn = lambda x, k: TF.linear(TF.relu(TF.linear(x, p[k + "linear1.weight"], p[k + "linear1.bias"])),
                                 p[k + "linear2.weight"], p[k + "linear2.bias"])
    src, pos = src.flatten(2).permute(2, 0, 1), pos.flatten(2).permute(2, 0, 1)
    qpos = query.unsqueeze(1).repeat(1, n, 1)
    for i in range(n_enc):
        k = f"encoder.layers.{i}."
        src = ln(src + torch_mha(p, k + "self_attn.", src + pos, src + pos, src, nhead), k + "norm1")
        src = ln(src + ffn(src, k), k + "norm2")
    tgt, out = torch.zeros_like(qpos), []
    for i in range(n_dec):
        k = f"decoder.layers.{i}."
        tgt = ln(tgt + torch_mha(p, k + "self_attn.", tgt + qpos, tgt + qpos, tgt, nhead), k + "norm1")
        tgt = ln(tgt + torch_mha(p, k + "multihead_attn.", tgt + qpos, src + pos, src, nhead), k + "norm2")
        tgt = ln(tgt + ffn(tgt, k), k + "norm3")
        out.append(ln(tgt, "decoder.norm"))
    return torch.stack(out).transpose(1, 2)


def box_cxcywh_to_xyxy(b):
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], -1)


def torch_giou(a, b):
    """Pairwise GIoU of xyxy boxes (N, 4), (M, 4), DETR's formula."""
    area_a, area_b = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]), (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt, rb = torch.max(a[:, None, :2], b[:, :2]), torch.min(a[:, None, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = area_a[:, None] + area_b - inter
    lt, rb = torch.min(a[:, None, :2], b[:, :2]), torch.max(a[:, None, 2:], b[:, 2:])
    area = (rb - lt).clamp(min=0).prod(-1)
    return inter / union - (area - union) / area


def torch_cost(logits, boxes, labels, tboxes, wc=1.0, wb=5.0, wg=2.0):
    prob = logits.softmax(-1)
    return (wb * torch.cdist(boxes, tboxes, p=1) - wc * prob[:, labels]
            - wg * torch_giou(box_cxcywh_to_xyxy(boxes), box_cxcywh_to_xyxy(tboxes)))


def torch_set_loss(logits, boxes, targets, indices, num_classes, eos_coef=0.1):
    """loss_ce, loss_bbox, loss_giou for given matches, written from the formulas."""
    n, q, _ = logits.shape
    target_classes = torch.full((n, q), num_classes, dtype=torch.int64)
    src, tgt = [], []
    for i, (t, (rows, cols)) in enumerate(zip(targets, indices)):
        target_classes[i, torch.as_tensor(rows)] = torch.as_tensor(t["labels"])[torch.as_tensor(cols)]
        src.append(boxes[i, torch.as_tensor(rows)])
        tgt.append(torch.as_tensor(t["boxes"])[torch.as_tensor(cols)])
    w = torch.ones(num_classes + 1, dtype=logits.dtype)
    w[-1] = eos_coef
    nll = -logits.log_softmax(-1).gather(-1, target_classes[..., None])[..., 0]
    wi = w[target_classes]
    loss_ce = (wi * nll).sum() / wi.sum()
    num_boxes = max(sum(len(t["labels"]) for t in targets), 1)
    src, tgt = torch.cat(src), torch.cat(tgt)
    loss_bbox = (src - tgt).abs().sum() / num_boxes
    loss_giou = (1 - torch.diag(torch_giou(box_cxcywh_to_xyxy(src), box_cxcywh_to_xyxy(tgt)))).sum() / num_boxes
    return loss_ce, loss_bbox, loss_giou


def random_case(rng, n, q, c, sizes, dtype=np.float64):
    logits = rng.standard_normal((n, q, c + 1)).astype(dtype)
    boxes = np.concatenate([rng.uniform(0.2, 0.8, (n, q, 2)), rng.uniform(0.05, 0.4, (n, q, 2))], -1).astype(dtype)
    targets = [{"labels": rng.integers(0, c, m).astype(np.int64),
                "boxes": np.concatenate([rng.uniform(0.2, 0.8, (m, 2)), rng.uniform(0.05, 0.4, (m, 2))], -1).astype(dtype)}
               for m in sizes]
    return logits, boxes, targets


# ----------------------------------------------------------------------------- position encoding

@pytest.mark.parametrize("dtype", DTYPES)
def test_position_encoding_matches_torch_formula(dtype):
    rng = np.random.default_rng(0)
    mask = np.zeros((2, 5, 7), dtype=bool)
    mask[1, :, 5:] = True                        # a padded image: positions count valid pixels only
    mask[1, 4:, :] = True
    x = tv.tensor(rng.standard_normal((2, 3, 5, 7)).astype(dtype))
    for m in (None, mask):
        ours = PositionEmbeddingSine(16, normalize=True)(x, m).numpy()
        theirs = torch_sine(torch.as_tensor(np.zeros((2, 5, 7), bool) if m is None else m), 16).numpy()
        assert ours.shape == (2, 32, 5, 7) and ours.dtype == dtype
        np.testing.assert_allclose(ours, theirs, **tol(dtype))


def test_position_encoding_bad_arguments():
    with pytest.raises(ValueError, match="normalize should be True"):
        PositionEmbeddingSine(8, scale=1.0)
    with pytest.raises(ValueError, match="mask must be"):
        PositionEmbeddingSine(8, normalize=True)(tv.zeros(1, 3, 4, 4), np.zeros((1, 4, 5), bool))


# ----------------------------------------------------------------------------- transformer

def small_transformer(dtype):
    tv.manual_seed(0)
    t = Transformer(d_model=8, nhead=2, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=12, dropout=0.0)
    return t.to(dtype=dtype) if dtype == np.float64 else t


@pytest.mark.parametrize("dtype", DTYPES)
def test_transformer_matches_torch(dtype):
    model = small_transformer(dtype)
    model.eval()
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(s).astype(dtype) for s in ((2, 8, 3, 4), (2, 8, 3, 4), (5, 8))]
    ours = [tv.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    p = {k: torch.tensor(v.numpy(), requires_grad=True) for k, v in model.state_dict().items()}
    hs, memory = model(ours[0], None, ours[2], ours[1])
    ref = torch_detr_transformer(p, theirs[0], theirs[1], theirs[2], nhead=2, n_enc=2, n_dec=2)
    assert tuple(hs.shape) == (2, 2, 5, 8) and tuple(memory.shape) == (2, 8, 3, 4)
    np.testing.assert_allclose(hs.detach().numpy(), ref.detach().numpy(), **tol(dtype, 10))
    u = np.random.default_rng(9).standard_normal(hs.shape).astype(dtype)
    (hs * tv.tensor(u)).sum().backward()
    (ref * torch.tensor(u)).sum().backward()
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), **tol(dtype, 10))
    named = dict(model.named_parameters())
    for k in ("encoder.layers.1.self_attn.in_proj_weight", "decoder.layers.0.multihead_attn.in_proj_weight",
              "decoder.layers.1.linear1.weight", "decoder.norm.weight"):
        np.testing.assert_allclose(named[k].grad.numpy(), p[k].grad.numpy(), **tol(dtype, 10), err_msg=k)


def test_transformer_gradcheck():
    model = small_transformer(np.float64)
    rng = np.random.default_rng(2)
    src, pos, query = (tv.tensor(rng.standard_normal(s), requires_grad=True) for s in ((1, 8, 2, 2), (1, 8, 2, 2), (3, 8)))
    tv.gradcheck(lambda s, p, q: model(s, None, q, p)[0], [src, pos, query])


# ----------------------------------------------------------------------------- matcher

@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2 ** 31), q=st.integers(1, 5), data=st.data())
def test_matcher_equals_brute_force(seed, q, data):
    sizes = [data.draw(st.integers(0, q)) for _ in range(2)]
    rng = np.random.default_rng(seed)
    logits, boxes, targets = random_case(rng, 2, q, 3, sizes)
    matcher = HungarianMatcher()
    indices = matcher({"pred_logits": logits, "pred_boxes": boxes}, targets)
    for i, (rows, cols) in enumerate(indices):
        m = sizes[i]
        assert len(rows) == len(cols) == m and len(set(rows.tolist())) == m and sorted(cols.tolist()) == list(range(m))
        if m == 0:
            continue
        cost = torch_cost(torch.tensor(logits[i]), torch.tensor(boxes[i]), torch.tensor(targets[i]["labels"]),
                          torch.tensor(targets[i]["boxes"])).numpy()
        np.testing.assert_allclose(matcher.cost_matrix(logits[i], boxes[i], targets[i]["labels"], targets[i]["boxes"]),
                                   cost, rtol=1e-10, atol=1e-12)
        best = min(sum(cost[perm[j], j] for j in range(m)) for perm in itertools.permutations(range(q), m))
        assert abs(cost[rows, cols].sum() - best) < 1e-10


def test_matcher_errors():
    rng = np.random.default_rng(3)
    logits, boxes, targets = random_case(rng, 1, 2, 3, [3])
    with pytest.raises(ValueError, match="3 objects but the model has only 2 queries"):
        HungarianMatcher()({"pred_logits": logits, "pred_boxes": boxes}, targets)
    logits, boxes, targets = random_case(rng, 1, 2, 3, [1])
    targets[0]["labels"][:] = 3                  # index 3 = no-object: not a real class
    with pytest.raises(ValueError, match="labels.*must lie in"):
        HungarianMatcher()({"pred_logits": logits, "pred_boxes": boxes}, targets)


# ----------------------------------------------------------------------------- criterion

@pytest.mark.parametrize("sizes", [[2, 3, 1], [0, 4, 2], [0, 0, 0]])
def test_criterion_equals_torch_formulas(sizes):
    rng = np.random.default_rng(sum(sizes))
    c, q = 3, 5
    logits, boxes, targets = random_case(rng, 3, q, c, sizes)
    aux = [random_case(rng, 3, q, c, sizes)[:2] for _ in range(2)]
    arrays = [logits, boxes] + [a for pair in aux for a in pair]
    ours = [tv.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    criterion = SetCriterion(c)
    outputs = {"pred_logits": ours[0], "pred_boxes": ours[1],
               "aux_outputs": [{"pred_logits": ours[2 + 2 * i], "pred_boxes": ours[3 + 2 * i]} for i in range(2)]}
    losses = criterion(outputs, targets)
    assert set(losses) == {f"{k}{s}" for k in ("loss_ce", "loss_bbox", "loss_giou") for s in ("", "_0", "_1")}
    total = criterion.total(losses)
    ref_total = 0
    matcher = HungarianMatcher()
    for j, suffix in enumerate(("", "_0", "_1")):
        lg, bx = theirs[2 * j], theirs[2 * j + 1]
        indices = matcher({"pred_logits": arrays[2 * j], "pred_boxes": arrays[2 * j + 1]}, targets)
        if sum(sizes) == 0:   # no objects: only the no-object term, a plain mean of -log p(no object)
            ce = -lg.log_softmax(-1)[..., -1].mean()
            assert float(losses["loss_bbox" + suffix].item()) == 0.0 and float(losses["loss_giou" + suffix].item()) == 0.0
            ref_total = ref_total + ce
            np.testing.assert_allclose(losses["loss_ce" + suffix].item(), ce.item(), rtol=1e-10, atol=1e-12)
            continue
        ce, l1, giou = torch_set_loss(lg, bx, targets, indices, c)
        for name, ref in (("loss_ce", ce), ("loss_bbox", l1), ("loss_giou", giou)):
            np.testing.assert_allclose(losses[name + suffix].item(), ref.item(), rtol=1e-10, atol=1e-12, err_msg=name + suffix)
        ref_total = ref_total + ce + 5 * l1 + 2 * giou
    np.testing.assert_allclose(total.item(), ref_total.item(), rtol=1e-10, atol=1e-12)
    total.backward()
    ref_total.backward()
    for i, (a, b) in enumerate(zip(ours, theirs)):
        ga = a.grad.numpy() if a.grad is not None else np.zeros(a.shape)
        gb = b.grad.numpy() if b.grad is not None else np.zeros(b.shape)
        np.testing.assert_allclose(ga, gb, rtol=1e-10, atol=1e-12, err_msg=f"gradient of input {i}")


def test_criterion_gradcheck():
    rng = np.random.default_rng(5)
    logits, boxes, targets = random_case(rng, 2, 3, 2, [2, 1])
    criterion = SetCriterion(2)
    # the matching is piecewise constant in the inputs; away from ties the loss is smooth
    tv.gradcheck(lambda lg, bx: criterion.total(criterion({"pred_logits": lg, "pred_boxes": bx}, targets)),
                 [tv.tensor(logits, requires_grad=True), tv.tensor(boxes, requires_grad=True)])


def test_criterion_has_no_state():
    """A TrainModule holding the criterion saves only the model: no criterion keys in checkpoints."""
    assert SetCriterion(3).state_dict() == {}


def test_criterion_more_objects_than_queries():
    rng = np.random.default_rng(6)
    logits, boxes, targets = random_case(rng, 1, 2, 3, [4])
    with pytest.raises(ValueError, match="4 objects but the model has only 2 queries"):
        SetCriterion(3)({"pred_logits": tv.tensor(logits), "pred_boxes": tv.tensor(boxes)}, targets)


# ----------------------------------------------------------------------------- the model

REFERENCE_KEYS = ["backbone.0.body.conv1.weight", "backbone.0.body.layer4.1.bn2.running_var",
                  "input_proj.weight", "input_proj.bias", "query_embed.weight",
                  "transformer.encoder.layers.0.self_attn.in_proj_weight",
                  "transformer.encoder.layers.0.self_attn.out_proj.weight", "transformer.encoder.layers.0.linear1.weight",
                  "transformer.encoder.layers.0.norm2.bias", "transformer.decoder.layers.0.multihead_attn.in_proj_bias",
                  "transformer.decoder.layers.0.norm3.weight", "transformer.decoder.norm.weight",
                  "class_embed.weight", "bbox_embed.layers.0.weight", "bbox_embed.layers.2.bias"]


def test_detr_resnet18_keys_shapes_and_aux_outputs():
    tv.manual_seed(0)
    model = create_model("detr_resnet18", num_classes=4, num_queries=7, hidden_dim=16, nheads=2, enc_layers=1,
                         dec_layers=3, dim_feedforward=32, stem_pool=False)
    sd = model.state_dict()
    for k in REFERENCE_KEYS:
        assert k in sd, k
    assert not any(k.startswith("backbone.0.body.fc") or k.startswith("backbone.1") for k in sd)
    assert sd["class_embed.weight"].shape == (5, 16) and sd["bbox_embed.layers.2.weight"].shape == (4, 16)
    assert sd["input_proj.weight"].shape == (16, 512, 1, 1)
    with pytest.raises(NotImplementedError, match="dilation"):   # DC5 needs bottlenecks, as torchvision
        create_model("detr_resnet18", dilation=True)
    model.eval()
    out = model(tv.tensor(np.random.default_rng(0).random((2, 3, 64, 64)).astype(np.float32)))
    assert tuple(out["pred_logits"].shape) == (2, 7, 5) and tuple(out["pred_boxes"].shape) == (2, 7, 4)
    assert len(out["aux_outputs"]) == 2
    b = out["pred_boxes"].detach().numpy()
    assert (b > 0).all() and (b < 1).all()
    dets = model.postprocess(out, [(64, 64), (64, 64)])
    assert dets[0]["boxes"].shape == (7, 4) and (dets[0]["labels"] < 4).all()


@pytest.mark.slow   # builds the full-size model (~41M parameters): about 5 s
def test_detr_resnet50_layout():
    model = create_model("detr_resnet50")    # the reference's configuration: 91 classes, 100 queries, 256 wide
    sd = model.state_dict()
    assert sd["class_embed.weight"].shape == (92, 256) and sd["query_embed.weight"].shape == (100, 256)
    assert sd["input_proj.weight"].shape == (256, 2048, 1, 1)
    assert "transformer.encoder.layers.5.norm2.weight" in sd and "transformer.decoder.layers.5.norm3.weight" in sd
    assert "transformer.encoder.layers.6.norm2.weight" not in sd


# ----------------------------------------------------------------------------- the detr task

def test_detr_task_targets_and_options():
    from tinyvision.train.setpred import DETRTask, detr_targets

    t = detr_targets([{"boxes": tv.tensor(np.array([[8.0, 16.0, 24.0, 48.0]], np.float32)),
                       "labels": tv.tensor(np.array([2]))}], (64, 32))      # (H, W)
    np.testing.assert_allclose(t[0]["boxes"], [[0.5, 0.5, 0.5, 0.5]])     # cx = 16/32, cy = 32/64, w = 16/32, h = 32/64
    assert t[0]["labels"].tolist() == [2]
    config = {**DETRTask.defaults, "num_classes": 4, "num_queries": 3}
    with pytest.raises(ValueError, match="--num-queries 3"):
        DETRTask().model_kwargs(config, None)


def _tiny_detr():
    tv.manual_seed(0)
    return create_model("detr_resnet18", num_classes=4, num_queries=4, hidden_dim=16, nheads=2, enc_layers=1,
                        dec_layers=1, dim_feedforward=16, stem_pool=False)


def test_decoder_attention_and_query_centres():
    from tinyvision.viz.detr import decoder_attention, query_centres

    model = _tiny_detr()
    images = np.random.default_rng(0).random((3, 3, 32, 32)).astype(np.float32)
    detections, attention = decoder_attention(model, images[0])
    assert attention.shape == (4, 2, 2)                              # 32 / 16 = 2 tokens a side
    np.testing.assert_allclose(attention.sum((1, 2)), 1, rtol=1e-5)  # a softmax over the tokens, per query
    assert model.transformer.decoder.layers[-1].keep_attention is False
    centres, areas = query_centres(model, images)
    boxes = model(tv.tensor(images))["pred_boxes"].detach().numpy()
    np.testing.assert_allclose(centres[:, 1], boxes[1, :, :2], rtol=1e-6)
    np.testing.assert_allclose(areas[:, 2], boxes[2, :, 2] * boxes[2, :, 3], rtol=1e-6)


@pytest.mark.slow   # matplotlib: a few seconds to import and draw
def test_viz_detr_pictures(tmp_path):
    from tinyvision.viz.detr import decoder_attention, plot_decoder_attention, plot_query_centres, query_centres

    model = _tiny_detr()
    images = np.random.default_rng(0).random((3, 3, 32, 32)).astype(np.float32)
    detections, attention = decoder_attention(model, images[0])
    assert plot_decoder_attention(images[0], detections, attention, tmp_path / "a.png", score_thresh=0).exists()
    assert plot_query_centres(*query_centres(model, images), tmp_path / "c.png").exists()


@pytest.mark.slow   # trains a (tiny) DETR for one epoch through the command line: ~30 s
def test_train_then_eval_json(tmp_path, monkeypatch, capsys):
    import json

    import tinyvision.train.detect as detect
    from tinyvision.cli import main

    monkeypatch.setattr(detect, "TRAIN_SCENES", 40)
    monkeypatch.setattr(detect, "TEST_SCENES", 8)
    main(["train", "--task", "detr", "--epochs", "1", "--num-queries", "5", "--hidden-dim", "16", "--enc-layers", "1",
          "--dec-layers", "1", "--quiet", "--out", str(tmp_path)])
    capsys.readouterr()
    main(["eval", "--checkpoint", str(tmp_path / "best.ckpt.npz"), "--json", "--quiet"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["task"] == "detr" and {"map", "map_50", "map_75"} <= set(result)
    with pytest.raises(SystemExit, match="--num-queries 3"):
        main(["train", "--task", "detr", "--num-queries", "3", "--out", str(tmp_path / "x")])
