"""Restoration networks (DnCNN, SRCNN, ESPCN, the deblurring U-Net) against PyTorch twins with
the same module names, on the same weights: outputs, input gradients and every parameter
gradient, float32 and float64; then tv.gradcheck on tiny versions."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from torch import nn as tnn

import tinyvision as tv
from tinyvision.models import create_model
from tinyvision.models.restoration import DeblurUNet, DnCNN, ESPCN, PatchGAN, SRCNN


# ------------------------------------------------------------------------- PyTorch twins
class TorchDnCNN(tnn.Module):
    def __init__(self, c=1, f=64, depth=17):
        super().__init__()
        layers = [tnn.Conv2d(c, f, 3, padding=1), tnn.ReLU()]
        for _ in range(depth - 2):
            layers += [tnn.Conv2d(f, f, 3, padding=1, bias=False), tnn.BatchNorm2d(f), tnn.ReLU()]
        self.layers = tnn.Sequential(*layers, tnn.Conv2d(f, c, 3, padding=1))

    def forward(self, x):
        return x - self.layers(x)


class TorchSRCNN(tnn.Module):
    def __init__(self, scale=2, c=1):
        super().__init__()
        self.scale = scale
        self.features, self.mapping = tnn.Conv2d(c, 64, 9, padding=4), tnn.Conv2d(64, 32, 1)
        self.reconstruction = tnn.Conv2d(32, c, 5, padding=2)

    def forward(self, x):
        x = TF.interpolate(x, scale_factor=self.scale, mode="bicubic")
        return self.reconstruction(torch.relu(self.mapping(torch.relu(self.features(x)))))


class TorchESPCN(tnn.Module):
    def __init__(self, scale=2, c=1, residual=False):
        super().__init__()
        self.scale, self.residual = scale, residual
        self.conv1, self.conv2 = tnn.Conv2d(c, 64, 5, padding=2), tnn.Conv2d(64, 32, 3, padding=1)
        self.conv3 = tnn.Conv2d(32, c * scale * scale, 3, padding=1)

    def forward(self, x):
        y = TF.pixel_shuffle(self.conv3(torch.tanh(self.conv2(torch.tanh(self.conv1(x))))), self.scale)
        return y + TF.interpolate(x, scale_factor=self.scale, mode="bicubic") if self.residual else y


def torch_double_conv(i, o):
    return tnn.Sequential(tnn.Conv2d(i, o, 3, padding=1), tnn.ReLU(), tnn.Conv2d(o, o, 3, padding=1), tnn.ReLU())


class TorchDeblurUNet(tnn.Module):
    def __init__(self, c=1, base=32, levels=3):
        super().__init__()
        w = [base * 2 ** i for i in range(levels + 1)]
        self.levels = levels
        self.down = tnn.ModuleList([torch_double_conv(c, w[0])] + [torch_double_conv(w[i], w[i + 1]) for i in range(levels)])
        self.upsample = tnn.ModuleList([tnn.ConvTranspose2d(w[i + 1], w[i], 2, stride=2) for i in reversed(range(levels))])
        self.up = tnn.ModuleList([torch_double_conv(2 * w[i], w[i]) for i in reversed(range(levels))])
        self.head = tnn.Conv2d(w[0], c, 1)

    def forward(self, x):
        h, w = x.shape[2:]
        m = 2 ** self.levels
        y = TF.pad(x, (0, -w % m, 0, -h % m), mode="reflect")
        skips = []
        for i, block in enumerate(self.down):
            y = block(y if i == 0 else TF.max_pool2d(y, 2))
            skips.append(y)
        for upsample, block, skip in zip(self.upsample, self.up, reversed(skips[:-1])):
            y = block(torch.cat([skip, upsample(y)], 1))
        return x + self.head(y)[:, :, :h, :w]


class TorchPatchGAN(tnn.Module):
    def __init__(self, c=1, ndf=64, n_layers=3):
        super().__init__()
        layers, width = [tnn.Conv2d(c, ndf, 4, 2, 1), tnn.LeakyReLU(0.2)], ndf
        for n in range(1, n_layers + 1):
            new = ndf * min(2 ** n, 8)
            layers += [tnn.Conv2d(width, new, 4, 2 if n < n_layers else 1, 1, bias=False), tnn.BatchNorm2d(new),
                       tnn.LeakyReLU(0.2)]
            width = new
        self.model = tnn.Sequential(*layers, tnn.Conv2d(width, 1, 4, 1, 1))

    def forward(self, x):
        return self.model(x)


# (tinyvision model, its torch twin, input shape, output shape)
CASES = {
    "dncnn": (lambda: DnCNN(1, 8, 5), lambda: TorchDnCNN(1, 8, 5), (2, 1, 9, 10), (2, 1, 9, 10)),
    "dncnn-rgb": (lambda: DnCNN(3, 4, 3), lambda: TorchDnCNN(3, 4, 3), (2, 3, 6, 5), (2, 3, 6, 5)),
    "srcnn-x3": (lambda: SRCNN(3), lambda: TorchSRCNN(3), (1, 1, 5, 6), (1, 1, 15, 18)),
    "espcn-x2": (lambda: ESPCN(2), lambda: TorchESPCN(2), (2, 1, 5, 6), (2, 1, 10, 12)),
    "espcn-x3-rgb": (lambda: ESPCN(3, 3), lambda: TorchESPCN(3, 3), (1, 3, 4, 5), (1, 3, 12, 15)),
    "espcn-x4-residual": (lambda: ESPCN(4, residual=True), lambda: TorchESPCN(4, residual=True), (1, 1, 4, 4), (1, 1, 16, 16)),
    "deblur_unet": (lambda: DeblurUNet(1, 4, 2), lambda: TorchDeblurUNet(1, 4, 2), (2, 1, 9, 11), (2, 1, 9, 11)),
    # 32 -> 16 -> 8 -> 7 -> 6 logits per side (stride 2, 2, then 1, 1 with 4x4 kernels)
    "patchgan": (lambda: PatchGAN(1, 4, 2), lambda: TorchPatchGAN(1, 4, 2), (2, 1, 32, 32), (2, 1, 6, 6)),
}


def twins(name, dtype):
    """Both models on the same (seeded) weights; the keys must be the same."""
    make_ours, make_theirs, in_shape, out_shape = CASES[name]
    tv.manual_seed(0)
    ours = make_ours().to(dtype=dtype)
    theirs = make_theirs().to(getattr(torch, np.dtype(dtype).name))
    state = {k: np.asarray(v.numpy(), dtype=dtype if v.numpy().dtype.kind == "f" else None)
             for k, v in ours.state_dict().items()}
    assert sorted(state) == sorted(theirs.state_dict()), "state_dict keys differ from the torch twin's"
    theirs.load_state_dict({k: torch.tensor(v) for k, v in state.items()})
    ours.load_state_dict({k: tv.tensor(v) for k, v in state.items()})
    return ours, theirs, in_shape, out_shape


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(CASES))
def test_matches_torch_twin(name, dtype):
    ours, theirs, in_shape, out_shape = twins(name, dtype)
    x = np.random.default_rng(1).random(in_shape).astype(dtype)
    u = np.random.default_rng(2).standard_normal(out_shape).astype(dtype)
    xo, xt = tv.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    yo, yt = ours(xo), theirs(xt)  # train mode: BatchNorm uses batch statistics
    assert yo.shape == out_shape == tuple(yt.shape)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(yo.detach().numpy(), yt.detach().numpy(), **tol)
    (yo * tv.tensor(u)).sum().backward()
    (yt * torch.tensor(u)).sum().backward()
    np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), **tol)
    grads = dict(theirs.named_parameters())
    for key, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), grads[key].grad.numpy(), **tol, err_msg=key)
    ours.eval(), theirs.eval()  # running statistics after one step
    with tv.no_grad():
        np.testing.assert_allclose(ours(tv.tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(), **tol)


@pytest.mark.parametrize("make,shape", [
    (lambda: DnCNN(1, 3, 3), (2, 1, 4, 5)),
    (lambda: SRCNN(2, features=(3, 2)), (1, 1, 3, 4)),
    (lambda: ESPCN(2, features=(3, 2), residual=True), (1, 1, 3, 4)),
    (lambda: DeblurUNet(1, 2, 1), (1, 1, 5, 3)),
    (lambda: PatchGAN(1, 2, 1), (2, 1, 8, 8)),
])
def test_gradcheck(make, shape):
    tv.manual_seed(0)
    model = make().double()
    x = tv.tensor(np.random.default_rng(0).random(shape), requires_grad=True)
    assert tv.gradcheck(model, [x])


def test_registry_and_paper_sizes():
    assert sum(p.numel() for p in create_model("dncnn").parameters()) == 556_097  # DnCNN-S, as the paper's ~0.56M
    assert sum(p.numel() for p in create_model("srcnn").parameters()) == 8_129  # 9-1-5: 64*81+64 + 32*64+32 + 32*25+1
    assert create_model("espcn", scale=3).conv3.out_channels == 9
    assert create_model("dncnn").receptive_field == 35
    # pix2pix's 70 x 70 PatchGAN on RGB: 2,765,633 parameters (and 30 x 30 logits from 256 x 256)
    assert sum(p.numel() for p in create_model("patchgan", in_channels=3).parameters()) == 2_765_633
    with pytest.raises(ValueError, match="ESPCN: scale must be 2, 3 or 4, got 5"):
        create_model("espcn", scale=5)
    with pytest.raises(ValueError, match="DnCNN: depth must be >= 3"):
        create_model("dncnn", depth=2)
