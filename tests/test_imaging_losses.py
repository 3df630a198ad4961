"""Restoration losses against the same formulas in torch (forward and gradients, float32 and
float64) and by finite differences."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from torch import nn as tnn

import tinyvision as tv
from tests.helpers import check_against_torch, check_op
from tests.test_metrics_image import torch_ssim
from tinyvision.imaging.losses import (GAN_LOSSES, PerceptualLoss, charbonnier_loss, discriminator_loss,
                                       generator_loss, ssim_loss, vgg_style_features)


def rand(*shape, seed=0):
    return np.random.default_rng(seed).random(shape)


def test_charbonnier_matches_torch():
    check_op(lambda a, b: charbonnier_loss(a, b, eps=0.05),
             lambda a, b: torch.sqrt((a - b) ** 2 + 0.05 ** 2).mean(), [rand(2, 1, 4, 5), rand(2, 1, 4, 5, seed=1)])


def test_ssim_loss_matches_torch():
    check_op(lambda a, b: ssim_loss(a, b), lambda a, b: 1 - torch_ssim(a, b),
             [rand(1, 1, 11, 12), rand(1, 1, 11, 12, seed=1)])


TORCH_D = {
    "non_saturating": lambda r, f: TF.binary_cross_entropy_with_logits(r, torch.ones_like(r))
    + TF.binary_cross_entropy_with_logits(f, torch.zeros_like(f)),
    "hinge": lambda r, f: torch.relu(1 - r).mean() + torch.relu(1 + f).mean(),
    "least_squares": lambda r, f: 0.5 * (TF.mse_loss(r, torch.ones_like(r)) + TF.mse_loss(f, torch.zeros_like(f))),
}
TORCH_G = {
    "non_saturating": lambda f: TF.binary_cross_entropy_with_logits(f, torch.ones_like(f)),
    "hinge": lambda f: -f.mean(),
    "least_squares": lambda f: 0.5 * TF.mse_loss(f, torch.ones_like(f)),
}


@pytest.mark.parametrize("kind", GAN_LOSSES)
def test_gan_losses_match_torch(kind):
    real = np.random.default_rng(0).standard_normal((2, 1, 3, 3)) * 2  # logits on both sides of +-1
    fake = np.random.default_rng(1).standard_normal((2, 1, 3, 3)) * 2
    check_op(lambda r, f: discriminator_loss(r, f, kind), TORCH_D[kind], [real, fake])
    check_op(lambda f: generator_loss(f, kind), TORCH_G[kind], [fake])


def test_gan_loss_kind_is_checked():
    with pytest.raises(ValueError, match=r"GAN loss must be one of \('non_saturating', 'hinge', 'least_squares'\), got 'wgan'"):
        generator_loss(tv.tensor(rand(1, 1, 2, 2)), "wgan")


def torch_features(ours, dtype):
    """The same VGG-style stack in torch with our weights."""
    layers = []
    for m in ours:
        name = type(m).__name__
        if name == "Conv2d":
            conv = tnn.Conv2d(m.in_channels, m.out_channels, 3, padding=1).to(dtype)
            conv.weight.data = torch.tensor(m.weight.numpy()).to(dtype)
            conv.bias.data = torch.tensor(m.bias.numpy()).to(dtype)
            layers.append(conv)
        else:
            layers.append(tnn.ReLU() if name == "ReLU" else tnn.MaxPool2d(2))
    return tnn.Sequential(*layers)


WEIGHTS = {1: 0.5, 8: 2.0}  # after the first ReLU, and after the last ReLU (past the pool)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_perceptual_loss_matches_torch(dtype):
    tv.manual_seed(0)
    feats = vgg_style_features(1, (3, 4)).to(dtype=dtype)
    loss = PerceptualLoss(feats, WEIGHTS)
    theirs = torch_features(feats, getattr(torch, np.dtype(dtype).name))

    def torch_loss(a, b):
        total, x, y = 0, a, b
        for i, layer in enumerate(theirs):
            x, y = layer(x), layer(y)
            if i in WEIGHTS:
                total = total + WEIGHTS[i] * TF.mse_loss(x, y.detach())
        return total

    x, y = rand(2, 1, 6, 8).astype(dtype), rand(2, 1, 6, 8, seed=1).astype(dtype)
    check_against_torch(lambda a, b: loss(a, b), torch_loss, [x, y], requires_grad=[True, False])
    if dtype == np.float64:
        assert tv.gradcheck(lambda a: loss(a, tv.tensor(y)), [tv.tensor(x, requires_grad=True)])


def test_perceptual_loss_freezes_the_features():
    feats = vgg_style_features(1, (3, 4))
    loss = PerceptualLoss(feats, WEIGHTS)
    xt = tv.tensor(rand(1, 1, 6, 8).astype(np.float32), requires_grad=True)
    loss(xt, tv.tensor(rand(1, 1, 6, 8, seed=1).astype(np.float32))).backward()
    assert xt.grad is not None and all(p.grad is None for p in feats.parameters())
    loss.train()
    assert not loss.features.training
    with pytest.raises(ValueError, match=r"layer indices \[12\] are outside the 9 layers"):
        PerceptualLoss(feats, {12: 1.0})
