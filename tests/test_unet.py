"""U-Net: against a PyTorch twin written from the paper with torch.nn.functional on the same
weights (outputs, every parameter gradient and the input gradient, float64 and float32, eval and
train mode), gradcheck at tiny size, the paper's 572 -> 388 shape, and unet_resnet18."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import tinyvision as tv
from tinyvision.models import create_model
from tinyvision.models.unet import UNet


def torch_unet(sd: dict, x: torch.Tensor, depth: int, up: str, padding: str, train: bool) -> torch.Tensor:
    """The paper's U-Net on the state_dict ``sd`` (torch tensors), written independently of
    tinyvision's modules: only the key names are shared."""
    pad = 1 if padding == "same" else 0

    def bn(prefix, v):
        return TF.batch_norm(v, sd[f"{prefix}.running_mean"].clone(), sd[f"{prefix}.running_var"].clone(),
                             sd[f"{prefix}.weight"], sd[f"{prefix}.bias"], training=train)

    def double_conv(prefix, v):           # conv, bn, relu, conv, bn, relu -> indices 0, 1, 3, 4
        for i in (0, 3):
            v = torch.relu(bn(f"{prefix}.{i + 1}", TF.conv2d(v, sd[f"{prefix}.{i}.weight"], padding=pad)))
        return v

    def crop(v, h, w):
        top, left = (v.shape[2] - h) // 2, (v.shape[3] - w) // 2
        return v[:, :, top:top + h, left:left + w]

    v = double_conv("inc", x)
    skips = [v]
    for i in range(depth):
        v = double_conv(f"downs.{i}.1", TF.max_pool2d(v, 2))
        skips.append(v)
    skips.pop()
    for i in range(depth):
        p = f"ups.{i}.up"
        if up == "transpose":
            v = TF.conv_transpose2d(v, sd[f"{p}.weight"], sd[f"{p}.bias"], stride=2)
        else:
            v = TF.interpolate(v, scale_factor=2, mode="bilinear", align_corners=False)
            v = TF.conv2d(v, sd[f"{p}.1.weight"], sd[f"{p}.1.bias"])
        skip = skips.pop()
        v = double_conv(f"ups.{i}.conv", torch.cat([crop(skip, v.shape[2], v.shape[3]), v], 1))
    return TF.conv2d(v, sd["outc.weight"], sd["outc.bias"])


def _randomise(model, rng):
    """Random weights and BN statistics (not the init), so that every term is exercised."""
    state = {}
    for k, v in model.state_dict().items():
        if k.endswith("running_var"):
            state[k] = rng.uniform(0.5, 1.5, v.shape)
        elif k.endswith("num_batches_tracked"):
            state[k] = np.zeros((), np.int64)
        else:
            state[k] = 0.3 * rng.standard_normal(v.shape)
    model.load_state_dict(state)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("up, padding, train, size", [
    ("transpose", "same", False, 16), ("bilinear", "same", True, 16), ("transpose", "valid", True, 44),
    ("bilinear", "valid", False, 44)])
def test_matches_torch_twin(up, padding, train, size, dtype):
    rng = np.random.default_rng(0)
    depth = 2
    model = UNet(in_channels=3, num_classes=4, depth=depth, width=4, up=up, padding=padding).to(np.dtype(dtype))
    _randomise(model, rng)
    model.train(train)
    x = rng.standard_normal((2, 3, size, size)).astype(dtype)
    xt = tv.tensor(x, requires_grad=True)
    out = model(xt)
    g = rng.standard_normal(out.shape).astype(dtype)
    (out * tv.tensor(g)).sum().backward()

    params = dict(model.named_parameters())
    sd = {k: torch.tensor(v.detach().numpy(), requires_grad=k in params) for k, v in model.state_dict().items()}
    xr = torch.tensor(x, requires_grad=True)
    ref = torch_unet(sd, xr, depth, up, padding, train)
    (ref * torch.tensor(g)).sum().backward()
    expect_shape = {16: 16, 44: 4}[size]        # valid: 44 -> 40 -> 20 -> 16 -> 8 -> 4 -> 8 -> 4 -> 8 -> 4
    assert out.shape == (2, 4, expect_shape, expect_shape)
    tol = 1e-10 if dtype == "float64" else 1e-4
    scale = ref.abs().max().item()
    np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), rtol=0, atol=tol * scale)
    # a gradient that is 0 up to rounding (a bias just before a BatchNorm in train mode) is
    # compared against the largest parameter gradient, not its own
    floor = max(np.abs(sd[name].grad.numpy()).max() for name in params)
    for name, p in model.named_parameters():
        r = sd[name].grad.numpy()
        np.testing.assert_allclose(p.grad.numpy(), r, rtol=0, atol=tol * max(np.abs(r).max(), 1e-3 * floor),
                                   err_msg=name)
    r = xr.grad.numpy()
    np.testing.assert_allclose(xt.grad.numpy(), r, rtol=0, atol=tol * np.abs(r).max())


@pytest.mark.parametrize("up", ["transpose", "bilinear"])
def test_gradcheck_tiny(up):
    rng = np.random.default_rng(1)
    model = UNet(in_channels=2, num_classes=2, depth=1, width=2, up=up).to(np.float64).train()
    _randomise(model, rng)
    x = tv.tensor(rng.standard_normal((2, 2, 4, 4)), requires_grad=True)
    params = list(model.parameters())
    tv.gradcheck(lambda inp, *_: model(inp), [x, *params], mode="random", n_directions=3)


def test_paper_shapes_and_parameter_count():
    """The paper's figure: 572 x 572 in, 388 x 388 out (valid padding, depth 4)."""
    model = UNet(in_channels=1, num_classes=2, depth=4, width=1, padding="valid", batch_norm=False)
    with tv.no_grad():
        assert model(tv.zeros((1, 1, 572, 572))).shape == (1, 2, 388, 388)
    # width 64: 31.0 M parameters without BN, as the paper's network
    full = UNet(in_channels=1, num_classes=2, batch_norm=False)
    assert sum(int(np.prod(p.shape)) for p in full.parameters()) == 31_030_658


def test_unet_resnet18_encoder_is_the_zoo_resnet18():
    model = create_model("unet_resnet18", num_classes=3)
    resnet = create_model("resnet18")
    keys = [k for k in resnet.state_dict() if not k.startswith("fc.")]
    assert [k for k in model.state_dict() if k.startswith("encoder.")] == ["encoder." + k for k in keys]
    with tv.no_grad():
        assert model(tv.zeros((1, 3, 32, 64))).shape == (1, 3, 32, 64)
    with pytest.raises(ValueError, match="divisible by 32"):
        model(tv.zeros((1, 3, 48, 64)))


def test_bad_arguments():
    with pytest.raises(ValueError, match="up must be 'transpose' or 'bilinear'"):
        UNet(up="nearest")
    with pytest.raises(ValueError, match="padding must be 'same' or 'valid'"):
        UNet(padding="reflect")
    with pytest.raises(ValueError, match=r"divisible by 2\*\*depth = 4"):
        UNet(depth=2, width=2)(tv.zeros((1, 3, 10, 12)))
