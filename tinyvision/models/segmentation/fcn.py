"""FCN (Long, Shelhamer & Darrell 2015): a classifier made fully convolutional.

A classification network ends in "global pool + fully connected"; replace that by convolutions
and it maps an image of any size to a grid of class scores, one per output-stride block of
pixels; upsample the grid to the input size and every pixel has scores. The paper recovered
detail with skip connections from finer stages (FCN-16s/8s) and learned upsampling; torchvision's
``fcn_resnet50`` instead keeps the map at stride 8 with a dilated ResNet (no resolution lost after
layer2), puts a small 3x3 conv head on it, and upsamples bilinearly. An optional auxiliary head
on layer3 (``aux_loss=True``) gives the middle of the network its own loss while training.

torchvision's module names and keys: ``backbone.*`` (the ResNet up to layer4),
``classifier.{0,1,4}`` (conv 3x3, BN, -, -, conv 1x1), ``aux_classifier.*``.
"""
from __future__ import annotations

from tinyvision import nn
from tinyvision.models._utils import IntermediateLayerGetter
from tinyvision.models.registry import register_model
from tinyvision.models.resnet import ResNet, resnet50, resnet101
from tinyvision.models.segmentation._utils import _SimpleSegmentationModel


class FCNHead(nn.Sequential):
    """conv 3x3 (in -> in/4) -> BN -> ReLU -> Dropout(0.1) -> conv 1x1 (-> channels)."""

    def __init__(self, in_channels: int, channels: int) -> None:
        inter_channels = in_channels // 4
        super().__init__(
            nn.Conv2d(in_channels, inter_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(inter_channels),
            nn.ReLU(),
            nn.Dropout(0.1),
            nn.Conv2d(inter_channels, channels, 1),
        )


class FCN(_SimpleSegmentationModel):
    """(N, 3, H, W) -> {"out": (N, num_classes, H, W)[, "aux"]}: see ``_SimpleSegmentationModel``."""


def dilated_backbone(backbone: ResNet, aux: bool) -> IntermediateLayerGetter:
    """layer4 as "out" (and layer3 as "aux"), for a ResNet built with output stride 8."""
    return_layers = {"layer4": "out"}
    if aux:
        return_layers["layer3"] = "aux"
    return IntermediateLayerGetter(backbone, return_layers=return_layers)


def _fcn_resnet(backbone: ResNet, num_classes: int, aux: bool) -> FCN:
    aux_classifier = FCNHead(1024, num_classes) if aux else None
    return FCN(dilated_backbone(backbone, aux), FCNHead(2048, num_classes), aux_classifier)


@register_model
def fcn_resnet50(num_classes: int = 21, aux_loss: bool = False, **kwargs) -> FCN:
    """FCN on a ResNet-50 with output stride 8 (``replace_stride_with_dilation=[False, True,
    True]``); 21 classes (PASCAL VOC) by default, as torchvision. ``kwargs`` go to the ResNet."""
    return _fcn_resnet(resnet50(replace_stride_with_dilation=[False, True, True], **kwargs), num_classes, aux_loss)


@register_model
def fcn_resnet101(num_classes: int = 21, aux_loss: bool = False, **kwargs) -> FCN:
    """FCN on a dilated ResNet-101 (output stride 8)."""
    return _fcn_resnet(resnet101(replace_stride_with_dilation=[False, True, True], **kwargs), num_classes, aux_loss)
