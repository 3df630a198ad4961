"""A ResNet trunk with a Feature Pyramid Network on top: the backbone of RetinaNet and
Faster/Mask R-CNN, with torchvision's structure and keys (``body.layer2.0.conv1.weight``,
``fpn.inner_blocks.0.0.weight``, ...).

``body`` runs the ResNet up to its last requested stage and returns the requested stages' maps
(C2..C5 have strides 4, 8, 16, 32); ``fpn`` turns them into same-width maps P2..P5 (+ extras).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable

from tinyvision.autograd.tensor import Tensor
from tinyvision.models._utils import IntermediateLayerGetter
from tinyvision.nn import Module
from tinyvision.ops.feature_pyramid_network import ExtraFPNBlock, FeaturePyramidNetwork, LastLevelMaxPool

class BackboneWithFPN(Module):
    """body (a ResNet trunk) + fpn; ``out_channels`` is the width of every output map."""

    def __init__(self, backbone: Module, return_layers: dict[str, str], in_channels_list: list[int],
                 out_channels: int, extra_blocks: ExtraFPNBlock | None = None,
                 norm_layer: Callable[..., Module] | None = None) -> None:
        super().__init__()
        self.body = IntermediateLayerGetter(backbone, return_layers)
        self.fpn = FeaturePyramidNetwork(in_channels_list, out_channels,
                                         extra_blocks=extra_blocks if extra_blocks is not None else LastLevelMaxPool(),
                                         norm_layer=norm_layer)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> "OrderedDict[str, Tensor]":
        return self.fpn(self.body(x))


def resnet_fpn_extractor(backbone: Module, trainable_layers: int, returned_layers: list[int] | None = None,
                         extra_blocks: ExtraFPNBlock | None = None, out_channels: int = 256,
                         norm_layer: Callable[..., Module] | None = None) -> BackboneWithFPN:
    """torchvision's ``_resnet_fpn_extractor``: freeze all but the last ``trainable_layers`` stages
    (5 = everything), return stages ``returned_layers`` (default 1-4) through an FPN."""
    if not 0 <= trainable_layers <= 5:
        raise ValueError(f"resnet_fpn_extractor: trainable_layers must be in [0, 5], got {trainable_layers}")
    to_train = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_layers]
    if trainable_layers == 5:
        to_train.append("bn1")
    for name, parameter in backbone.named_parameters():
        if not any(name.startswith(layer) for layer in to_train):
            parameter.requires_grad_(False)
    returned_layers = returned_layers or [1, 2, 3, 4]
    if min(returned_layers) <= 0 or max(returned_layers) >= 5:
        raise ValueError(f"resnet_fpn_extractor: returned layers must be in [1, 4], got {returned_layers}")
    return_layers = {f"layer{k}": str(v) for v, k in enumerate(returned_layers)}
    stage2 = backbone.inplanes // 8                     # the width of layer1's output
    in_channels_list = [stage2 * 2 ** (i - 1) for i in returned_layers]
    return BackboneWithFPN(backbone, return_layers, in_channels_list, out_channels, extra_blocks, norm_layer)
