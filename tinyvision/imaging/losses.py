"""The loss zoo of image restoration, and what each does to the result.

    L2 (F.mse_loss)   mean (y - x)^2          the mean of all plausible answers: blur where the
                                              input leaves detail ambiguous
    L1 (F.l1_loss)    mean |y - x|            their median: sharper edges, less outlier weight
    Charbonnier       mean sqrt((y-x)^2 + e^2) L1 smoothed near 0 (differentiable there)
    SSIM loss         1 - SSIM(y, x)          local structure, contrast and brightness
    perceptual        sum_l w_l mean (phi_l(y) - phi_l(x))^2 over feature maps phi_l of a
                      network: texture that matches in feature space, not pixel by pixel
    adversarial       a discriminator D scores realism; the generator is pushed towards what D
                      cannot tell from real images (realism at the cost of fidelity)

GAN losses on the discriminator's logits (real: D(x), fake: D(G(y))), averaged over all
outputs (a PatchGAN gives one logit per patch):

    non-saturating  L_D = softplus(-D(x)) + softplus(D(G))   L_G = softplus(-D(G))
                    (binary cross-entropy; G maximises log D(G) instead of minimising
                    log(1 - D(G)), whose gradient vanishes while D wins easily)
    hinge           L_D = relu(1 - D(x)) + relu(1 + D(G))    L_G = -D(G)
    least-squares   L_D = ((D(x) - 1)^2 + D(G)^2) / 2         L_G = (D(G) - 1)^2 / 2
"""
from __future__ import annotations

from typing import Sequence

import tinyvision as tv
import tinyvision.nn.functional as F
from tinyvision import nn
from tinyvision.metrics.image import ssim

GAN_LOSSES = ("non_saturating", "hinge", "least_squares")


def charbonnier_loss(input: tv.Tensor, target: tv.Tensor, eps: float = 1e-3) -> tv.Tensor:
    """mean sqrt((input - target)^2 + eps^2): a smooth L1 (LapSRN's, EDVR's), any shape."""
    if input.shape != target.shape:
        raise ValueError(f"charbonnier_loss: input {input.shape} and target {target.shape} differ")
    diff = input - target
    return ((diff * diff + eps * eps) ** 0.5).mean()


def ssim_loss(input: tv.Tensor, target: tv.Tensor, data_range: float = 1.0) -> tv.Tensor:
    """1 - SSIM(input, target) on (N, C, H, W) (the mean SSIM over images; see metrics.ssim)."""
    return 1 - ssim(input, target, data_range=data_range)


class PerceptualLoss(nn.Module):
    """sum over chosen layers l of w_l * mean((phi_l(input) - phi_l(target))^2), phi_l the
    output of layer l of ``features`` (an ``nn.Sequential``, e.g. a VGG's ``features``).

    ``layer_weights`` maps a layer index to its weight: early layers compare edges and colour,
    later ones texture and parts. The feature network is frozen (its parameters get no
    gradient) and kept in eval mode; the input gradient flows through it."""

    def __init__(self, features: nn.Sequential, layer_weights: dict[int, float]) -> None:
        super().__init__()
        if not layer_weights:
            raise ValueError("PerceptualLoss: layer_weights must name at least one layer")
        bad = [i for i in layer_weights if not 0 <= i < len(features)]
        if bad:
            raise ValueError(f"PerceptualLoss: layer indices {bad} are outside the {len(features)} layers of features")
        self.features = features
        self.layer_weights = dict(layer_weights)
        for p in self.features.parameters():
            p.requires_grad_(False)
        self.features.eval()

    def train(self, mode: bool = True) -> "PerceptualLoss":
        super().train(mode)
        self.features.eval()  # BatchNorm/Dropout of the feature network stay frozen
        return self

    def feature_maps(self, x: tv.Tensor) -> dict[int, tv.Tensor]:
        maps, last = {}, max(self.layer_weights)
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.layer_weights:
                maps[i] = x
            if i == last:
                break
        return maps

    def forward(self, input: tv.Tensor, target: tv.Tensor) -> tv.Tensor:
        ours, theirs = self.feature_maps(input), self.feature_maps(target)
        total = None
        for i, w in self.layer_weights.items():
            term = F.mse_loss(ours[i], theirs[i].detach()) * w
            total = term if total is None else total + term
        return total


def _check_kind(kind: str) -> None:
    if kind not in GAN_LOSSES:
        raise ValueError(f"GAN loss must be one of {GAN_LOSSES}, got {kind!r}")


def discriminator_loss(real_logits: tv.Tensor, fake_logits: tv.Tensor, kind: str = "non_saturating") -> tv.Tensor:
    """The discriminator's loss on its logits for real and generated images (see the module docstring)."""
    _check_kind(kind)
    if kind == "non_saturating":
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    if kind == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    return (((real_logits - 1) ** 2).mean() + (fake_logits ** 2).mean()) * 0.5


def generator_loss(fake_logits: tv.Tensor, kind: str = "non_saturating") -> tv.Tensor:
    """The generator's adversarial loss on the discriminator's logits for its images."""
    _check_kind(kind)
    if kind == "non_saturating":
        return F.softplus(-fake_logits).mean()
    if kind == "hinge":
        return -fake_logits.mean()
    return ((fake_logits - 1) ** 2).mean() * 0.5


def vgg_style_features(in_channels: int = 1, widths: Sequence[int] = (16, 32, 64)) -> nn.Sequential:
    """A small VGG-style feature stack for perceptual losses: per width two 3x3 conv + ReLU,
    then 2x2 max-pool (the pool is left off after the last stage)."""
    layers: list[nn.Module] = []
    c = in_channels
    for stage, w in enumerate(widths):
        layers += [nn.Conv2d(c, w, 3, padding=1), nn.ReLU(), nn.Conv2d(w, w, 3, padding=1), nn.ReLU()]
        if stage < len(widths) - 1:
            layers.append(nn.MaxPool2d(2))
        c = w
    return nn.Sequential(*layers)
