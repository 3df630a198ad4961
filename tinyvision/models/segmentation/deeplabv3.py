"""DeepLabV3 (Chen et al. 2017): atrous spatial pyramid pooling on a dilated ResNet.

Objects appear at many scales. ASPP looks at each position of the stride-8 map through five
branches in parallel: a 1x1 conv, three 3x3 convs with dilation (atrous rate) 12, 24 and 36,
which see 25, 49 and 73 map cells (200-580 input pixels) with the parameters of a 3x3, and an
image-pooling branch (global average, 1x1 conv, broadcast back) that carries the whole image's
context. Their 5 x 256 channels are projected to 256 by a 1x1 conv, then a 3x3 conv and a 1x1
classifier give the scores, upsampled bilinearly to the input size.

torchvision's module names and keys: ``classifier.0`` is the ASPP (``convs.0..4``,
``project``), ``classifier.1..4`` the 3x3 conv, BN, ReLU and 1x1 classifier.
"""
from __future__ import annotations

from typing import Sequence

from tinyvision import functional as F
from tinyvision import nn
from tinyvision.autograd.tensor import Tensor
from tinyvision.models.registry import register_model
from tinyvision.models.resnet import ResNet, resnet50
from tinyvision.models.segmentation._utils import _SimpleSegmentationModel
from tinyvision.models.segmentation.fcn import FCNHead, dilated_backbone


class ASPPConv(nn.Sequential):
    """One atrous branch: 3x3 conv with dilation d (padding d keeps the size) -> BN -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )


class ASPPPooling(nn.Sequential):
    """Image pooling: global average -> 1x1 conv -> BN -> ReLU, then back to the map's size
    (bilinear from 1x1 = a copy to every position)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )

    def forward(self, x: Tensor) -> Tensor:
        size = tuple(x.shape[-2:])
        for module in self:
            x = module(x)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """(N, in_channels, h, w) -> (N, out_channels, h, w): five parallel branches (1x1, one
    ``ASPPConv`` per atrous rate, image pooling), concatenated, projected by a 1x1 conv, BN,
    ReLU and Dropout(0.5)."""

    def __init__(self, in_channels: int, atrous_rates: Sequence[int], out_channels: int = 256) -> None:
        super().__init__()
        branches = [nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False),
                                  nn.BatchNorm2d(out_channels), nn.ReLU())]
        branches += [ASPPConv(in_channels, out_channels, rate) for rate in atrous_rates]
        branches.append(ASPPPooling(in_channels, out_channels))
        self.convs = nn.ModuleList(branches)
        self.project = nn.Sequential(
            nn.Conv2d(len(self.convs) * out_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            nn.Dropout(0.5),
        )

    def forward(self, x: Tensor) -> Tensor:
        branches = [conv(x) for conv in self.convs]
        return self.project(F.cat(branches, dim=1))


class DeepLabHead(nn.Sequential):
    """ASPP -> 3x3 conv (256) -> BN -> ReLU -> 1x1 conv (num_classes)."""

    def __init__(self, in_channels: int, num_classes: int, atrous_rates: Sequence[int] = (12, 24, 36)) -> None:
        super().__init__(
            ASPP(in_channels, atrous_rates),
            nn.Conv2d(256, 256, 3, padding=1, bias=False),
            nn.BatchNorm2d(256),
            nn.ReLU(),
            nn.Conv2d(256, num_classes, 1),
        )


class DeepLabV3(_SimpleSegmentationModel):
    """(N, 3, H, W) -> {"out": (N, num_classes, H, W)[, "aux"]}: see ``_SimpleSegmentationModel``."""


def _deeplabv3_resnet(backbone: ResNet, num_classes: int, aux: bool) -> DeepLabV3:
    aux_classifier = FCNHead(1024, num_classes) if aux else None
    return DeepLabV3(dilated_backbone(backbone, aux), DeepLabHead(2048, num_classes), aux_classifier)


@register_model
def deeplabv3_resnet50(num_classes: int = 21, aux_loss: bool = False, **kwargs) -> DeepLabV3:
    """DeepLabV3 on a ResNet-50 with output stride 8; 21 classes by default, as torchvision."""
    return _deeplabv3_resnet(resnet50(replace_stride_with_dilation=[False, True, True], **kwargs),
                             num_classes, aux_loss)
