"""Swin, DeiT and the conv-stem hybrid ViT against the REAL timm 1.0.31, through golden fixtures.

tests/fixtures/make_transformer_fixtures.py (run once, in a separate environment with timm)
built each timm model at a small size, filled it with seeded weights, ran a seeded batch in
float64 and stored the outputs, the loss and the gradients. Here the same weights go into
tinyvision and everything must agree within 1e-9 relative in float64: the outputs (to the
largest |output|), the loss, every parameter gradient's norm and its projection on a seeded
random direction (to that gradient's norm), and a fixed sample of the input gradient. The
float32 run is held to 1e-4 / 1e-3 against the same float64 reference (rounding, not
arithmetic order). The full-size models' key lists come from timm too (keys.json).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import tinyvision as tv
import tinyvision.nn.functional as F
from tinyvision.models import create_model
from tests.fixtures.seeded import grad_projection, input_sample, seeded_input, seeded_state_dict, seeded_target

FIXTURE_DIR = Path(__file__).parent / "fixtures" / "transformers"
FIXTURES = sorted(FIXTURE_DIR.glob("*.npz"))
TOL = {"float64": (1e-9, 1e-9), "float32": (1e-4, 1e-3)}  # (outputs, gradients), relative


def load(path: Path) -> tuple[dict, dict]:
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    return json.loads(str(arrays.pop("meta"))), arrays


def build(meta: dict, dtype: str):
    model = create_model(meta["model"], **meta["kwargs"]).to(np.dtype(dtype))
    shapes = dict(zip(meta["keys"], map(tuple, meta["shapes"])))
    weights = seeded_state_dict(shapes, meta["seed"])  # the fixture rounded them to float32
    model.load_state_dict({k: v.astype(np.int64) if k.endswith("num_batches_tracked")
                           else v.astype(np.float32).astype(dtype) for k, v in weights.items()})
    return model.train(meta["mode"] == "train")


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_keys_match_timm(path: Path) -> None:
    meta, _ = load(path)
    model = create_model(meta["model"], **meta["kwargs"])
    assert [[k, list(v.shape)] for k, v in model.state_dict().items()] == [list(x) for x in zip(meta["keys"], meta["shapes"])]
    assert [k for k, _ in model.named_parameters()] == meta["params"]


FULL_SIZE = [pytest.param(name, marks=[pytest.mark.slow] if name.startswith(("swin_small", "swin_base")) else [])
             for name in json.loads((FIXTURE_DIR / "keys.json").read_text())["models"]]  # 50-88 M zeros: slow


@pytest.mark.parametrize("name", FULL_SIZE)
def test_full_size_state_dict_keys_match_timm(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """timm's ImageNet checkpoints load unchanged: the same keys, in the same order, same shapes."""
    expected = json.loads((FIXTURE_DIR / "keys.json").read_text())["models"][name]
    from tinyvision import nn

    with monkeypatch.context() as m:  # no initial draws: tens of millions of weights take seconds
        m.setattr(nn.init, "trunc_normal_", lambda t, *a, **k: t)
        m.setattr(nn.init, "normal_", lambda t, *a, **k: t)
        model = create_model(name)
    assert [[k, list(v.shape)] for k, v in model.state_dict().items()] == expected


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_outputs_and_gradients_match_timm(path: Path, dtype: str) -> None:
    meta, ref = load(path)
    model = build(meta, dtype)
    x = tv.tensor(seeded_input(tuple(meta["input_shape"]), meta["seed"]).astype(dtype), requires_grad=True)
    target = tv.tensor(seeded_target(x.shape[0], meta["kwargs"]["num_classes"], meta["seed"]))
    outputs = model(x)
    outputs = tuple(outputs) if isinstance(outputs, tuple) else (outputs,)
    assert len(outputs) == meta["num_outputs"]
    loss = F.cross_entropy(outputs[0], target)
    for extra in outputs[1:]:
        loss = loss + meta["second_output_weight"] * F.cross_entropy(extra, target)
    loss.backward()

    out_tol, grad_tol = TOL[dtype]
    expected = ref["float64_logits"]
    for ours, theirs in zip(outputs, expected):
        np.testing.assert_allclose(ours.detach().numpy(), theirs, rtol=0, atol=out_tol * np.abs(theirs).max())
    np.testing.assert_allclose(loss.item(), ref["float64_loss"], rtol=out_tol)
    named = list(model.named_parameters())
    norms = np.array([np.linalg.norm(p.grad.numpy().astype(np.float64)) for _, p in named])
    ref_norms = ref["float64_grad_norms"]
    np.testing.assert_allclose(norms, ref_norms, rtol=grad_tol, atol=grad_tol * ref_norms.max())
    projections = np.array([grad_projection(k, p.grad.numpy().astype(np.float64)) for k, p in named])
    err = np.abs(projections - ref["float64_grad_projections"])
    bad = [(k, float(e), float(n)) for (k, _), e, n in zip(named, err, ref_norms) if e > grad_tol * (n + 1e-3 * ref_norms.max())]
    assert not bad, f"parameter gradients differ from timm's (projection error, norm): {bad[:5]}"
    g = x.grad.numpy().astype(np.float64).ravel()
    np.testing.assert_allclose(np.linalg.norm(g), ref["float64_input_grad_norm"], rtol=grad_tol)
    sample = ref["float64_input_grad_sample"]
    np.testing.assert_allclose(g[input_sample(g.size)], sample, rtol=0, atol=grad_tol * np.abs(sample).max())
    state = model.state_dict()  # BatchNorm running statistics after a train-mode forward (the hybrid's stem)
    for key in (k for k in ref if k.startswith("after_")):
        np.testing.assert_allclose(state[key[len("after_"):]].numpy(), ref[key], rtol=out_tol, atol=out_tol)
