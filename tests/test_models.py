"""The model zoo against the REAL torchvision / timm models, through golden fixtures.

tests/fixtures/make_model_fixtures.py (run once, in a separate environment with torchvision
0.29.1 and timm) built each reference model, filled it with seeded weights, and stored its
key list, logits, loss and gradients. Here we recreate the same weights from the same seed,
load them into tinyvision, and compare.

Tolerances: float64 logits within 1e-10 of the logit scale and gradient norms within 1e-8
relative (the same arithmetic in another order), and each parameter gradient's projection on
a seeded random direction within the same tolerance times its norm; float32 within 1e-4 of the logit scale
(rounding accumulates over dozens of layers) and gradient
norms within 1e-3 relative (tests/fixtures/seeded.py). The fixture script checks that
torch's own float32 run meets these against its float64 run, so that an input sitting on a
ReLU kink (where float32 rounding flips a mask) is never used as a reference.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import tinyvision as tv
import tinyvision.nn.functional as F
from tinyvision.models import create_model, list_models
from tests.fixtures.seeded import (GRAD_TOL, LOGITS_TOL, grad_projection, input_sample, seeded_input,
                                   seeded_state_dict, seeded_target, shrink_classifier)

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "models").glob("*.npz"))
HEAVY = {"vgg11_bn"}  # 120M-parameter classifier: ~45 s for both dtypes on 2 cores
CASES = [pytest.param(p, id=p.stem, marks=[pytest.mark.slow] if p.stem in HEAVY else []) for p in FIXTURES]


def load_fixture(path: Path) -> tuple[dict, dict]:
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    return json.loads(str(arrays.pop("meta"))), arrays


def build(meta: dict):
    """The fixture's model, without drawing initial weights (the test overwrites them all, and
    drawing VGG's 120 M takes seconds), with the classifier narrowed as the fixture's was."""
    from tinyvision import nn

    with nn.init.skip_init():
        model = create_model(meta["model"], **meta["kwargs"])
    if meta.get("classifier_width"):
        shrink_classifier(model.classifier, meta["classifier_width"], nn.Linear)
    return model


@pytest.mark.parametrize("path", CASES)
def test_state_dict_keys_and_shapes_match_reference(path: Path) -> None:
    meta, _ = load_fixture(path)
    model = build(meta)
    ours = model.state_dict()
    assert list(ours) == meta["keys"]
    assert [list(v.shape) for v in ours.values()] == meta["shapes"]
    assert [name for name, _ in model.named_parameters()] == meta["params"]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("path", CASES)
def test_logits_and_gradients_match_reference(path: Path, dtype: str) -> None:
    meta, ref = load_fixture(path)
    if dtype not in meta["dtypes"]:
        pytest.skip(f"{path.stem}: no {dtype} reference (see make_model_fixtures.py for why)")
    model = build(meta).to(np.dtype(dtype))
    shapes = dict(zip(meta["keys"], map(tuple, meta["shapes"])))
    weights = seeded_state_dict(shapes, meta["seed"])  # the fixture rounded them to float32
    model.load_state_dict({k: v.astype(np.float32).astype(dtype) if not k.endswith("num_batches_tracked")
                           else v.astype(np.int64) for k, v in weights.items()})
    model.train(meta["mode"] == "train")
    x = tv.tensor(seeded_input(tuple(meta["input_shape"]), meta["input_seed"]).astype(dtype), requires_grad=True)
    target = tv.tensor(seeded_target(x.shape[0], 10, meta["seed"]))
    outputs = model(x)
    outputs = tuple(outputs) if isinstance(outputs, tuple) else (outputs,)  # GoogLeNet train: 3 heads
    assert len(outputs) == meta["num_outputs"]
    loss = F.cross_entropy(outputs[0], target)
    for aux in outputs[1:]:
        loss = loss + meta["aux_weight"] * F.cross_entropy(aux, target)
    loss.backward()

    expected_logits = ref[f"{dtype}_logits"]
    rel = LOGITS_TOL[dtype]
    for ours, theirs in zip(outputs, expected_logits):
        np.testing.assert_allclose(ours.detach().numpy(), theirs, rtol=0, atol=rel * np.abs(theirs).max())
    np.testing.assert_allclose(loss.item(), ref[f"{dtype}_loss"], rtol=rel)
    grad_rtol = GRAD_TOL[dtype]
    # a parameter the forward never used (GoogLeNet's aux heads in eval mode) has no gradient;
    # the fixture stores 0 for torch's None
    named = list(model.named_parameters())
    norms = np.array([0.0 if p.grad is None else np.linalg.norm(p.grad.numpy().astype(np.float64))
                      for _, p in named])
    expected = ref[f"{dtype}_grad_norms"]
    floor = grad_rtol * expected.max()  # a parameter whose gradient is ~0 is compared absolutely
    np.testing.assert_allclose(norms, expected, rtol=grad_rtol, atol=floor)
    # norms cannot see elements moved (a conv gradient with its spatial axes swapped keeps its
    # norm): each gradient projected on a seeded random direction, within tolerance x ||grad||
    projections = np.array([0.0 if p.grad is None else grad_projection(k, p.grad.numpy()) for k, p in named])
    err = np.abs(projections - ref[f"{dtype}_grad_projections"])
    bad = [(k, float(e)) for (k, _), e, n in zip(named, err, expected) if e > grad_rtol * n + floor]
    assert not bad, f"gradients differ from the reference's (by projection): {bad[:5]}"
    g = x.grad.numpy().astype(np.float64).ravel()
    np.testing.assert_allclose(np.linalg.norm(g), ref[f"{dtype}_input_grad_norm"], rtol=grad_rtol)
    sample = ref[f"{dtype}_input_grad_sample"]
    np.testing.assert_allclose(g[input_sample(g.size)], sample, rtol=0, atol=grad_rtol * np.abs(sample).max())
    if meta["mode"] == "train" and dtype == "float64":  # BatchNorm running statistics
        state = model.state_dict()
        for key in (k for k in ref if k.startswith("after_")):
            np.testing.assert_allclose(state[key[len("after_"):]].numpy(), ref[key], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name, kwargs, count", [
    ("resnet18", {}, 11_689_512),
    ("resnet34", {}, 21_797_672),
    ("resnet50", {}, 25_557_032),
    ("vit_tiny_patch16_224", {}, 5_717_416),
    ("alexnet", {}, 61_100_840),
    ("googlenet", {"aux_logits": False}, 6_624_904),
    ("googlenet", {"aux_logits": True}, 13_004_888),
    ("lenet5", {"num_classes": 10}, 60_000),  # the paper's count (the RBF codes are fixed, a buffer)
])
def test_parameter_counts(name: str, kwargs: dict, count: int) -> None:
    model = create_model(name, **kwargs)
    assert sum(p.numel() for p in model.parameters()) == count


@pytest.mark.slow
@pytest.mark.parametrize("name, count", [("vgg11", 132_863_336), ("vgg16", 138_357_544)])
def test_vgg_parameter_counts(name: str, count: int) -> None:
    assert sum(p.numel() for p in create_model(name).parameters()) == count


def test_registry_lists_every_family_and_rejects_unknown_names() -> None:
    names = list_models()
    for expected in ("lenet5", "lenet5_modern", "alexnet", "alexnet_paper", "vgg11", "vgg19_bn",
                     "googlenet", "resnet18", "resnet34", "resnet50", "vit_tiny_patch16_224",
                     "vit_small_patch16_224", "vit_base_patch16_224"):
        assert expected in names
    with pytest.raises(ValueError, match="resnet19"):
        create_model("resnet19")


def test_small_vit_and_cifar_resnet_shapes() -> None:
    vit = create_model("vit_tiny_patch16_224", num_classes=10, img_size=32, patch_size=4)
    assert vit.pos_embed.shape == (1, 65, 192)
    net = create_model("resnet18", num_classes=10, cifar_stem=True)
    assert net.conv1.weight.shape == (64, 3, 3, 3)
    with tv.no_grad():
        assert vit(tv.randn(2, 3, 32, 32)).shape == (2, 10)
        assert net.eval()(tv.randn(2, 3, 32, 32)).shape == (2, 10)


def test_googlenet_train_mode_returns_aux_outputs_in_torchvision_order() -> None:
    net = create_model("googlenet", num_classes=10)
    out = net.train()(tv.randn(2, 3, 64, 64))
    assert out._fields == ("logits", "aux_logits2", "aux_logits1")
    assert all(o.shape == (2, 10) for o in out)
    assert net.eval()(tv.randn(2, 3, 64, 64)).shape == (2, 10)


def test_zero_init_residual_starts_each_block_as_identity() -> None:
    net = create_model("resnet18", zero_init_residual=True)
    assert all(float(abs(block.bn2.weight).sum().item()) == 0.0
               for layer in (net.layer1, net.layer2, net.layer3, net.layer4) for block in layer)


@pytest.mark.parametrize("config, batch_norm, convs", [  # the convs' indices in torchvision's `features`
    ("A", False, [0, 3, 6, 8, 11, 13, 16, 18]),
    ("A", True, [0, 4, 8, 11, 15, 18, 22, 25]),
    ("D", False, [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]),
])
def test_vgg_feature_indices_match_torchvision(config: str, batch_norm: bool, convs: list[int]) -> None:
    from tinyvision import nn
    from tinyvision.models.vgg import CONFIGS, make_layers

    features = make_layers(CONFIGS[config], batch_norm)
    assert [i for i, m in enumerate(features) if isinstance(m, nn.Conv2d)] == convs
    if batch_norm:
        assert all(isinstance(features[i + 1], nn.BatchNorm2d) for i in convs)


def test_alexnet_paper_structure() -> None:
    """The 2012 paper's layer sizes, counted by hand: convs 96-256-384-384-256 with conv2/4/5
    split into two towers (groups=2 halves their weights), FCs 9216-4096-4096-1000:
    34,944 + 307,456 + 885,120 + 663,936 + 442,624 + 37,752,832 + 16,781,312 + 4,097,000."""
    from tinyvision import nn

    net = create_model("alexnet_paper")
    assert sum(p.numel() for p in net.parameters()) == 60_965_224
    assert [type(m).__name__ for m in net.features][:4] == ["Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d"]
    assert [m.groups for m in net.features if isinstance(m, nn.Conv2d)] == [1, 2, 1, 2, 2]
    with tv.no_grad():
        assert net.eval()(tv.randn(1, 3, 224, 224)).shape == (1, 1000)
