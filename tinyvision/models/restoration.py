"""Image restoration networks: image in, image out, every one fully convolutional (any size).

* DnCNN (Zhang, Zuo, Chen, Meng & Zhang 2017, "Beyond a Gaussian denoiser"): 17 conv layers
  of 64 3x3 filters, BatchNorm in the middle 15, and *residual learning*: the network predicts
  the noise v = y - x and the output is y - v. The noise is a simpler target than the clean
  image (small, zero-mean, no edges to draw), which is why the deep plain stack trains fast.
* SRCNN (Dong, Loy, He & Tang 2014): bicubic upsampling, then three convolutions read as patch
  extraction (9x9, 64), non-linear mapping (1x1, 32) and reconstruction (5x5): "9-1-5".
* ESPCN (Shi et al. 2016, "Real-time single image and video super-resolution"): all the work at
  low resolution (5x5 64, 3x3 32, tanh), then a 3x3 conv to C r^2 channels that
  ``pixel_shuffle`` rearranges into the r-times larger image (the "sub-pixel convolution").
* DeblurUNet: a small U-Net (Ronneberger et al. 2015) that predicts the residual between the
  blurred and the sharp image; its receptive field (about 100 px with 3 levels) must cover the
  blur kernel, which a plain stack of 3x3 convs would need ~50 layers for.

Padding keeps the spatial size in every layer (the papers' SRCNN used none and cropped the
target; padding lets the networks restore whole images of any size).
"""
from __future__ import annotations

import tinyvision as tv
import tinyvision.nn.functional as F
from tinyvision import nn
from tinyvision.models.registry import register_model


# ------------------------------------------------------------------------------------ DnCNN
class DnCNN(nn.Module):
    """(N, C, H, W) noisy -> (N, C, H, W) denoised = noisy - predicted noise.

    ``depth`` conv layers: conv+ReLU, (depth - 2) x conv+BN+ReLU, conv (the paper: 17, 64)."""

    def __init__(self, in_channels: int = 1, features: int = 64, depth: int = 17) -> None:
        super().__init__()
        if depth < 3:
            raise ValueError(f"DnCNN: depth must be >= 3 (first, middle, last layer), got {depth}")
        layers: list[nn.Module] = [nn.Conv2d(in_channels, features, 3, padding=1), nn.ReLU()]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(features, features, 3, padding=1, bias=False), nn.BatchNorm2d(features), nn.ReLU()]
        layers.append(nn.Conv2d(features, in_channels, 3, padding=1))
        self.layers = nn.Sequential(*layers)
        self.in_channels, self.depth = in_channels, depth
        self.receptive_field = 2 * depth + 1  # each 3x3 layer widens it by 2

    def forward(self, x: tv.Tensor) -> tv.Tensor:
        noise = self.layers(x)  # residual learning: the network's target is the noise
        return x - noise


# ------------------------------------------------------------------------------------ SRCNN
class SRCNN(nn.Module):
    """(N, C, H, W) low-resolution -> (N, C, H r, W r): bicubic x ``scale``, then 9-1-5 convs."""

    def __init__(self, scale: int = 2, in_channels: int = 1, features: tuple[int, int] = (64, 32)) -> None:
        super().__init__()
        f1, f2 = features
        self.scale, self.in_channels = scale, in_channels
        self.features = nn.Conv2d(in_channels, f1, 9, padding=4)  # patch extraction
        self.mapping = nn.Conv2d(f1, f2, 1)  # non-linear mapping, one patch vector to another
        self.reconstruction = nn.Conv2d(f2, in_channels, 5, padding=2)
        self.relu = nn.ReLU()
        self.receptive_field = 9 + 5 - 1

    def forward(self, x: tv.Tensor) -> tv.Tensor:
        x = F.interpolate(x, scale_factor=self.scale, mode="bicubic")
        x = self.relu(self.features(x))
        x = self.relu(self.mapping(x))
        return self.reconstruction(x)


# ------------------------------------------------------------------------------------ ESPCN
class ESPCN(nn.Module):
    """(N, C, H, W) low-resolution -> (N, C, H r, W r) by sub-pixel convolution.

    ``residual=True`` (not in the paper) adds the bicubic upsampling of the input, so the
    network learns only the missing detail, as DnCNN learns only the noise."""

    def __init__(self, scale: int = 2, in_channels: int = 1, features: tuple[int, int] = (64, 32),
                 residual: bool = False) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"ESPCN: scale must be 2, 3 or 4, got {scale}")
        f1, f2 = features
        self.scale, self.in_channels, self.residual = scale, in_channels, residual
        self.conv1 = nn.Conv2d(in_channels, f1, 5, padding=2)
        self.conv2 = nn.Conv2d(f1, f2, 3, padding=1)
        self.conv3 = nn.Conv2d(f2, in_channels * scale * scale, 3, padding=1)  # C r^2 sub-pixel maps
        self.tanh = nn.Tanh()
        self.receptive_field = 5 + 3 + 3 - 2

    def forward(self, x: tv.Tensor) -> tv.Tensor:
        y = self.tanh(self.conv1(x))
        y = self.tanh(self.conv2(y))
        y = F.pixel_shuffle(self.conv3(y), self.scale)  # (N, C r^2, H, W) -> (N, C, H r, W r)
        if self.residual:
            y = y + F.interpolate(x, scale_factor=self.scale, mode="bicubic")
        return y


# ------------------------------------------------------------------------------- Deblur U-Net
class DoubleConv(nn.Sequential):
    """Two 3x3 conv + ReLU at one resolution (the U-Net's building block)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(out_channels, out_channels, 3, padding=1), nn.ReLU())


class DeblurUNet(nn.Module):
    """(N, C, H, W) blurred -> (N, C, H, W) sharp = blurred + predicted correction.

    ``levels`` halvings (2x2 max-pool) with ``base * 2^l`` channels at level l; on the way up a
    2x2 transposed conv doubles the size and the encoder's map at that size is concatenated
    (the skip connection that carries the fine detail). Inputs whose sides are not multiples of
    2^levels are reflect-padded and the output cropped back."""

    def __init__(self, in_channels: int = 1, base: int = 32, levels: int = 3) -> None:
        super().__init__()
        widths = [base * 2 ** level for level in range(levels + 1)]
        self.in_channels, self.levels = in_channels, levels
        self.down = nn.ModuleList([DoubleConv(in_channels, widths[0])] +
                                  [DoubleConv(widths[i], widths[i + 1]) for i in range(levels)])
        self.pool = nn.MaxPool2d(2)
        self.upsample = nn.ModuleList([nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
                                       for i in reversed(range(levels))])
        self.up = nn.ModuleList([DoubleConv(2 * widths[i], widths[i]) for i in reversed(range(levels))])
        self.head = nn.Conv2d(widths[0], in_channels, 1)
        # 4 px per DoubleConv at each level, times the level's stride, down and up, plus the pools
        self.receptive_field = 1 + sum(4 * 2 ** i for i in range(levels)) * 2 + 4 * 2 ** levels + 2 ** levels - 1

    def forward(self, x: tv.Tensor) -> tv.Tensor:
        h, w = x.shape[2:]
        multiple = 2 ** self.levels
        pad_h, pad_w = -h % multiple, -w % multiple
        y = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect") if pad_h or pad_w else x
        skips = []
        for i, block in enumerate(self.down):
            y = block(y if i == 0 else self.pool(y))
            skips.append(y)
        for upsample, block, skip in zip(self.upsample, self.up, reversed(skips[:-1])):
            y = block(tv.cat([skip, upsample(y)], dim=1))
        correction = self.head(y)[:, :, :h, :w]
        return x + correction


# ------------------------------------------------------------------------ PatchGAN critic
class LeakyReLU(nn.Module):
    """max(x, slope x)."""

    def __init__(self, negative_slope: float = 0.2) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: tv.Tensor) -> tv.Tensor:
        return F.leaky_relu(x, self.negative_slope)


class PatchGAN(nn.Module):
    """pix2pix's discriminator (Isola et al. 2017): (N, C, H, W) -> (N, 1, H', W') logits, one
    per overlapping patch (70 x 70 px with ``n_layers=3``), so it judges local texture and
    leaves the global layout to the pixel loss. 4x4 convs: ``n_layers`` with stride 2 (widths
    ndf, 2 ndf, ... capped at 8 ndf; BatchNorm after all but the first), one with stride 1,
    then a 1-channel output; LeakyReLU 0.2. Keys as pix2pix's ``NLayerDiscriminator``."""

    def __init__(self, in_channels: int = 1, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), LeakyReLU(0.2)]
        width = ndf
        for n in range(1, n_layers + 1):
            new = ndf * min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(width, new, 4, stride=stride, padding=1, bias=False), nn.BatchNorm2d(new),
                       LeakyReLU(0.2)]
            width = new
        layers.append(nn.Conv2d(width, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: tv.Tensor) -> tv.Tensor:
        return self.model(x)


# ---------------------------------------------------------------------------- named variants
@register_model
def dncnn(in_channels: int = 1, features: int = 64, depth: int = 17) -> DnCNN:
    """DnCNN-S of the paper: 17 layers, 64 features."""
    return DnCNN(in_channels, features, depth)


@register_model
def srcnn(scale: int = 2, in_channels: int = 1) -> SRCNN:
    """SRCNN 9-1-5 with 64 and 32 filters."""
    return SRCNN(scale, in_channels)


@register_model
def espcn(scale: int = 2, in_channels: int = 1, residual: bool = False) -> ESPCN:
    """ESPCN with the paper's (64, 32) filters for x2, x3 or x4."""
    return ESPCN(scale, in_channels, residual=residual)


@register_model
def patchgan(in_channels: int = 1, ndf: int = 64, n_layers: int = 3) -> PatchGAN:
    """The 70 x 70 PatchGAN discriminator."""
    return PatchGAN(in_channels, ndf, n_layers)


@register_model
def deblur_unet(in_channels: int = 1, base: int = 32, levels: int = 3) -> DeblurUNet:
    """A 3-level residual U-Net for deblurring."""
    return DeblurUNet(in_channels, base, levels)
