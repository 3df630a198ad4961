"""U-Net (Ronneberger, Fischer & Brox 2015): a contracting path, an expanding path, and skips.

The paper's figure is a "U": going down, each level is two 3x3 convs + ReLU, then a 2x2 max-pool
that halves the size while the next level doubles the channels (64, 128, 256, 512, 1024). Going
up, each level upsamples by 2 (a 2x2 "up-convolution" that halves the channels), concatenates
the feature map of the same level from the way down (the skip: fine detail the bottleneck lost),
and applies two 3x3 convs. A 1x1 conv maps the last 64 channels to the class scores.

    in -> [DoubleConv 64] ---------------------------------------- cat -> [DoubleConv 64] -> 1x1 -> out
              | pool                                                ^ up
              v                                                     |
           [DoubleConv 128] ------------------------------ cat -> [DoubleConv 128]
              | pool                                         ^ up
              v                                              |
            ...  (``depth`` levels down) ...  [DoubleConv 64 * 2^depth]  (the bottom)

Options beyond the paper, each a known variant:
- ``padding="same"`` (3x3 convs padded by 1: output size = input size, input divisible by
  2^depth) or ``"valid"`` (the paper: no padding, each conv loses 2 pixels, the output is
  smaller than the input and each skip is centre-cropped to the upsampled map's size).
- ``up="transpose"`` (the paper's learned 2x2 up-convolution) or ``"bilinear"`` (fixed bilinear
  x2 then a 1x1 conv to halve the channels: no checkerboard artefacts, see docs/segmentation.md).
- ``batch_norm=True`` puts BatchNorm after each conv (the paper predates BatchNorm; it trains
  much faster with it).
``unet_resnet18`` swaps the contracting path for the zoo's ResNet-18.
"""
from __future__ import annotations

from tinyvision import functional as F
from tinyvision import nn
from tinyvision.autograd.tensor import Tensor
from tinyvision.models._utils import IntermediateLayerGetter
from tinyvision.models.registry import register_model
from tinyvision.models.resnet import resnet18


class DoubleConv(nn.Sequential):
    """(3x3 conv -> [BN] -> ReLU) twice: one level of the "U"."""

    def __init__(self, in_channels: int, out_channels: int, padding: str = "same", batch_norm: bool = True) -> None:
        pad = 1 if padding == "same" else 0
        layers: list[nn.Module] = []
        for c_in in (in_channels, out_channels):
            layers.append(nn.Conv2d(c_in, out_channels, 3, padding=pad, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class Down(nn.Sequential):
    """2x2 max-pool (halves H, W) -> DoubleConv."""

    def __init__(self, in_channels: int, out_channels: int, padding: str = "same", batch_norm: bool = True) -> None:
        super().__init__(nn.MaxPool2d(2), DoubleConv(in_channels, out_channels, padding, batch_norm))


def center_crop(x: Tensor, height: int, width: int) -> Tensor:
    """The central (height, width) window of a (N, C, H, W) map (the paper's skip cropping)."""
    top, left = (x.shape[2] - height) // 2, (x.shape[3] - width) // 2
    return x[:, :, top:top + height, left:left + width]


class Up(nn.Module):
    """Upsample x2 (halving the channels), concatenate the skip [centre-cropped], DoubleConv.

    (N, in_channels, h, w) and skip (N, skip_channels, >= 2h, >= 2w) -> (N, out_channels, 2h', 2w');
    ``skip_channels=0`` upsamples without a skip.
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, up: str = "transpose",
                 padding: str = "same", batch_norm: bool = True) -> None:
        super().__init__()
        if up == "transpose":   # the paper's learned 2x2 up-convolution, stride 2
            self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
        else:                   # fixed bilinear x2, then a learned 1x1 conv for the channels
            self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                    nn.Conv2d(in_channels, in_channels // 2, kernel_size=1))
        self.conv = DoubleConv(in_channels // 2 + skip_channels, out_channels, padding, batch_norm)

    def forward(self, x: Tensor, skip: Tensor | None = None) -> Tensor:
        x = self.up(x)
        if skip is not None:
            skip = center_crop(skip, x.shape[2], x.shape[3])
            x = F.cat([skip, x], dim=1)
        return self.conv(x)


def _check_options(up: str, padding: str) -> None:
    if up not in ("transpose", "bilinear"):
        raise ValueError(f"UNet: up must be 'transpose' or 'bilinear', got {up!r}")
    if padding not in ("same", "valid"):
        raise ValueError(f"UNet: padding must be 'same' or 'valid', got {padding!r}")


class UNet(nn.Module):
    """(N, in_channels, H, W) -> scores (N, num_classes, H', W'): H' = H with padding="same"
    (H divisible by 2^depth), smaller with "valid" (572 -> 388 for the paper's depth 4).

    ``width`` channels at the top level, doubling per level down: width * 2^depth at the bottom.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 2, depth: int = 4, width: int = 64,
                 up: str = "transpose", padding: str = "same", batch_norm: bool = True) -> None:
        super().__init__()
        _check_options(up, padding)
        if depth < 1 or width < 1:
            raise ValueError(f"UNet: depth and width must be >= 1, got depth={depth}, width={width}")
        self.depth, self.padding = depth, padding
        channels = [width * 2 ** i for i in range(depth + 1)]          # 64, 128, ..., 1024
        self.inc = DoubleConv(in_channels, channels[0], padding, batch_norm)
        self.downs = nn.ModuleList([Down(channels[i], channels[i + 1], padding, batch_norm) for i in range(depth)])
        self.ups = nn.ModuleList([Up(channels[i + 1], channels[i], channels[i], up, padding, batch_norm)
                                  for i in reversed(range(depth))])
        self.outc = nn.Conv2d(channels[0], num_classes, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        if self.padding == "same" and (x.shape[2] % 2 ** self.depth or x.shape[3] % 2 ** self.depth):
            raise ValueError(f"UNet: with padding='same' the input's H and W must be divisible by "
                             f"2**depth = {2 ** self.depth}, got input of shape {x.shape}")
        x = self.inc(x)
        skips = [x]
        for down in self.downs:                 # the contracting path
            x = down(x)
            skips.append(x)
        skips.pop()                             # the bottom has no skip
        for up in self.ups:                     # the expanding path
            x = up(x, skips.pop())
        return self.outc(x)


class ResNetUNet(nn.Module):
    """U-Net whose contracting path is a ResNet-18 (strides 2, 4, 8, 16, 32 at relu, layer1..4).

    The expanding path mirrors it: four ``Up`` blocks with skips from layer3, layer2, layer1
    and the stem (relu), then one more x2 without a skip back to the input size, and a 1x1 conv.
    (N, 3, H, W) -> (N, num_classes, H, W), H and W divisible by 32. ``encoder`` keeps the
    ResNet's own keys (``encoder.conv1.weight``, ``encoder.layer1.0...``), so ImageNet weights
    for resnet18 load into it.
    """

    def __init__(self, num_classes: int = 2, up: str = "transpose") -> None:
        super().__init__()
        _check_options(up, "same")
        self.encoder = IntermediateLayerGetter(resnet18(), {"relu": "c1", "layer1": "c2", "layer2": "c3",
                                                            "layer3": "c4", "layer4": "c5"})
        self.ups = nn.ModuleList([Up(512, 256, 256, up), Up(256, 128, 128, up), Up(128, 64, 64, up),
                                  Up(64, 64, 64, up)])
        self.final = Up(64, 0, 32, up)          # stride 2 -> 1, no skip at full resolution
        self.outc = nn.Conv2d(32, num_classes, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[2] % 32 or x.shape[3] % 32:
            raise ValueError(f"ResNetUNet: the input's H and W must be divisible by 32, "
                             f"got input of shape {x.shape}")
        f = self.encoder(x)
        y = f["c5"]
        for up, skip in zip(self.ups, (f["c4"], f["c3"], f["c2"], f["c1"])):
            y = up(y, skip)
        return self.outc(self.final(y))


@register_model
def unet(num_classes: int = 2, **kwargs) -> UNet:
    """The paper's U-Net (depth 4, width 64, ``up="transpose"``), padding "same" and BatchNorm
    by default; every option is a keyword (see ``UNet``)."""
    return UNet(num_classes=num_classes, **kwargs)


@register_model
def unet_resnet18(num_classes: int = 2, **kwargs) -> ResNetUNet:
    """U-Net with the zoo's ResNet-18 as its contracting path (see ``ResNetUNet``)."""
    return ResNetUNet(num_classes=num_classes, **kwargs)
