"""FCN and DeepLabV3 against the REAL torchvision 0.29.1, through golden fixtures
(tests/fixtures/make_segmentation_fixtures.py, run in a separate environment).

Same seeded weights, same seeded (2, 3, 24, 32) input, L = <out, G1> + <aux, G2>. float64: both
outputs within 1e-10 of their largest value; every parameter gradient within 1e-9 relative,
checked element-wise on its first 16 elements and as a whole through its projection on a seeded
N(0, 1) direction (for an error e that projection is ~ N(0, |e|^2), so it bounds |e| / |g|);
the input gradient element-wise; BatchNorm running statistics after a train-mode forward.
float32: the outputs within 10x torch's own float32-vs-float64 spread on the same case.
Also: dilation in ResNet-50 (output stride 8) and IntermediateLayerGetter against torch.
"""
from pathlib import Path

import numpy as np
import pytest
import torch

import tinyvision as tv
from tinyvision import nn
from tinyvision.models import create_model
from tinyvision.models._utils import IntermediateLayerGetter
from tinyvision.models.resnet import resnet18, resnet50
from tests.fixtures.seeded import seeded_direction, seeded_input, seeded_state_dict
from tests.test_models import load_fixture
from tests.test_models import test_state_dict_keys_and_shapes_match_reference as check_keys_and_shapes

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "segmentation").glob("*.npz"))
# a ResNet-50 in float64 takes 5-15 s per case on 2 busy cores: one case (ASPP, image pooling,
# the aux FCN head and the dilated backbone together) runs by default, the rest with -m slow
FAST = {"deeplabv3_resnet50"}
CASES = [pytest.param(p, id=p.stem, marks=[] if p.stem in FAST else [pytest.mark.slow]) for p in FIXTURES]


def build(meta: dict, dtype: str) -> nn.Module:
    model = create_model(meta["model"], **meta["kwargs"]).to(np.dtype(dtype))
    shapes = dict(zip(meta["keys"], map(tuple, meta["shapes"])))
    weights = seeded_state_dict(shapes, meta["seed"])  # the fixture rounded them to float32
    model.load_state_dict({k: v.astype(np.float32).astype(dtype) if not k.endswith("num_batches_tracked")
                           else v.astype(np.int64) for k, v in weights.items()})
    model.train(meta["mode"] == "train")
    for m in model.modules():  # as the fixture: dropout off, so train mode is deterministic
        if isinstance(m, nn.Dropout):
            m.eval()
    return model


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_state_dict_keys_and_shapes_match_torchvision(path: Path) -> None:
    check_keys_and_shapes(path)  # the zoo's check, on these fixtures


@pytest.mark.parametrize("path", CASES)
def test_float64_outputs_and_every_gradient_match_torchvision(path: Path) -> None:
    meta, ref = load_fixture(path)
    model = build(meta, "float64")
    x = tv.tensor(seeded_input(tuple(meta["input_shape"]), meta["seed"]), requires_grad=True)
    outputs = model(x)
    assert list(outputs) == [k[len("float64_out_"):] for k in ref if k.startswith("float64_out_")]
    loss = None
    for i, (k, out) in enumerate(outputs.items()):
        expect = ref[f"float64_out_{k}"]
        np.testing.assert_allclose(out.detach().numpy(), expect, rtol=0, atol=1e-10 * np.abs(expect).max())
        term = (out * tv.tensor(seeded_input(tuple(out.shape), 10 + i))).sum()
        loss = term if loss is None else loss + term
    loss.backward()
    for name, p in model.named_parameters():
        g, norm = p.grad.numpy(), float(ref[f"float64_gnorm_{name}"])
        np.testing.assert_allclose(np.linalg.norm(g), norm, rtol=1e-9, err_msg=name)
        first = ref[f"float64_gfirst_{name}"]
        np.testing.assert_allclose(g.ravel()[:16], first, rtol=0, atol=1e-9 * norm, err_msg=name)
        proj = np.sum(g * seeded_direction(name, g.shape, meta["seed"]))
        assert abs(proj - float(ref[f"float64_gproj_{name}"])) <= 1e-9 * norm, name
    gx = ref["float64_input_grad"]
    np.testing.assert_allclose(x.grad.numpy(), gx, rtol=0, atol=1e-9 * np.abs(gx).max())
    if meta["mode"] == "train":
        state = model.state_dict()
        for key in (k for k in ref if k.startswith("after_")):
            np.testing.assert_allclose(state[key[len("after_"):]].numpy(), ref[key], rtol=1e-10, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("path", [p for p in FIXTURES if p.stem in ("fcn_resnet50", "deeplabv3_resnet50_train")],
                         ids=lambda p: p.stem)
def test_float32_outputs_within_torchs_own_float32_spread(path: Path) -> None:
    meta, ref = load_fixture(path)
    model = build(meta, "float32")
    with tv.no_grad():
        outputs = model(tv.tensor(seeded_input(tuple(meta["input_shape"]), meta["seed"]).astype(np.float32)))
    for k, out in outputs.items():
        expect = ref[f"float64_out_{k}"]
        err = np.abs(out.numpy().astype(np.float64) - expect).max() / np.abs(expect).max()
        assert err <= 10 * meta["float32_spread"], (k, err, meta["float32_spread"])


def test_dilated_resnet50_matches_torch_and_keeps_output_stride_8() -> None:
    """layer4 of resnet50(replace_stride_with_dilation=[False, True, True]) against torch's
    ops with the same weights (a twin built from torch.nn), and its size: H/8."""
    model = resnet50(replace_stride_with_dilation=[False, True, True]).to(np.float64).eval()
    body = IntermediateLayerGetter(model, {"layer2": "c3", "layer4": "c5"})
    assert list(body) == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    x = np.random.default_rng(0).standard_normal((1, 3, 24, 32))
    out = body(tv.tensor(x))
    assert list(out) == ["c3", "c5"] and out["c5"].shape == (1, 2048, 3, 4) and out["c3"].shape == (1, 512, 3, 4)
    # dilations as torchvision: layer3's first block keeps 1, its others 2; layer4 2 then 4
    assert model.layer3[0].conv2.dilation == (1, 1) and model.layer3[1].conv2.dilation == (2, 2)
    assert model.layer4[0].conv2.dilation == (2, 2) and model.layer4[2].conv2.dilation == (4, 4)
    assert model.layer4[0].downsample[0].stride == (1, 1)
    # the last block of layer4 through torch's conv2d with the same weights
    block = model.layer4[2]
    h = tv.tensor(np.random.default_rng(1).standard_normal((1, 2048, 3, 4)))
    ours = block(h).detach().numpy()
    t = torch.from_numpy(h.numpy())

    def bn(m, v):
        return torch.nn.functional.batch_norm(v, *(torch.from_numpy(a.numpy()) for a in
                                                   (m.running_mean, m.running_var, m.weight.detach(), m.bias.detach())), eps=m.eps)

    w = [torch.from_numpy(c.weight.detach().numpy()) for c in (block.conv1, block.conv2, block.conv3)]
    y = torch.relu(bn(block.bn1, torch.conv2d(t, w[0])))
    y = torch.relu(bn(block.bn2, torch.conv2d(y, w[1], padding=4, dilation=4)))
    y = torch.relu(bn(block.bn3, torch.conv2d(y, w[2])) + t)
    np.testing.assert_allclose(ours, y.numpy(), rtol=1e-10, atol=1e-12)


def test_bad_arguments() -> None:
    with pytest.raises(NotImplementedError, match="BasicBlock: dilation > 1"):
        resnet18(replace_stride_with_dilation=[False, True, True])
    with pytest.raises(ValueError, match="3-element list"):
        resnet50(replace_stride_with_dilation=[True, True])
    with pytest.raises(ValueError, match=r"return_layers \['layer5'\] are not children of ResNet"):
        IntermediateLayerGetter(resnet18(), {"layer5": "out"})
