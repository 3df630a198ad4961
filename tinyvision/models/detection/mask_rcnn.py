"""Mask R-CNN (He, Gkioxari, Dollar, Girshick 2017): Faster R-CNN plus a mask branch, with
torchvision's structure and keys (``roi_heads.mask_head.{0..3}.0.*``,
``roi_heads.mask_predictor.conv5_mask.*``, ``roi_heads.mask_predictor.mask_fcn_logits.*``).

The branch runs on each detection (each foreground proposal in training): RoIAlign at 14x14
(RoIAlign, not RoIPool: a mask needs the pixel alignment that rounding destroys), four 3x3
conv + ReLU layers, a 2x2 stride-2 transposed conv to 28x28 + ReLU, and a 1x1 conv to one mask
logit map per class. Only the map of the predicted (or true) class is used, so the classes do not
compete for pixels: the paper's decoupling of masks from classification. At inference the 28x28
probabilities are pasted into the image inside each box (``paste_masks_in_image``).
"""
from __future__ import annotations

from collections import OrderedDict
from functools import partial
from typing import Any

from tinyvision.models.detection.faster_rcnn import FasterRCNN, resnet_fpn_backbone_for_rcnn, rpn_anchors
from tinyvision.models.registry import register_model
from tinyvision.models.resnet import BasicBlock, Bottleneck
from tinyvision.nn import Conv2d, ConvTranspose2d, Module, ReLU, Sequential, init
from tinyvision.ops.poolers import MultiScaleRoIAlign


class MaskRCNNHeads(Sequential):
    """Four 3x3 conv + ReLU layers (keys {i}.0.weight), He-initialised (fan_out)."""

    def __init__(self, in_channels: int, layers: tuple[int, ...] = (256, 256, 256, 256), dilation: int = 1) -> None:
        blocks, channels = [], in_channels
        for width in layers:
            blocks.append(Sequential(Conv2d(channels, width, 3, padding=dilation, dilation=dilation), ReLU()))
            channels = width
        super().__init__(*blocks)
        for m in self.modules():
            if isinstance(m, Conv2d):
                init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                init.zeros_(m.bias)


class MaskRCNNPredictor(Sequential):
    """conv5_mask (2x2 stride-2 transposed conv, 14 -> 28) + ReLU, then mask_fcn_logits (1x1, one
    map per class)."""

    def __init__(self, in_channels: int, dim_reduced: int, num_classes: int) -> None:
        super().__init__(OrderedDict([("conv5_mask", ConvTranspose2d(in_channels, dim_reduced, 2, 2, 0)),
                                      ("relu", ReLU()),
                                      ("mask_fcn_logits", Conv2d(dim_reduced, num_classes, 1))]))
        for name, p in self.named_parameters():
            if "weight" in name:
                init.kaiming_normal_(p, mode="fan_out", nonlinearity="relu")
            elif "bias" in name:
                init.zeros_(p)


class MaskRCNN(FasterRCNN):
    """FasterRCNN + the mask branch; detections gain ``masks`` (D, 1, H, W) probabilities, and
    training adds ``loss_mask`` (targets need ``masks`` (n, H, W))."""

    def __init__(self, backbone: Module, num_classes: int, mask_roi_pool: Module | None = None,
                 mask_head: Module | None = None, mask_predictor: Module | None = None, **kwargs: Any) -> None:
        out_channels = backbone.out_channels
        mask_roi_pool = mask_roi_pool or MultiScaleRoIAlign(["0", "1", "2", "3"], 14, 2)
        mask_head = mask_head or MaskRCNNHeads(out_channels)
        mask_predictor = mask_predictor or MaskRCNNPredictor(256, 256, num_classes)
        super().__init__(backbone, num_classes, mask_roi_pool=mask_roi_pool, mask_head=mask_head,
                         mask_predictor=mask_predictor, **kwargs)


def _maskrcnn_resnet_fpn(block, layers, num_classes: int = 91, trainable_backbone_layers: int = 5,
                         fpn_channels: int = 256, anchor_sizes: list[int] | None = None, **kwargs: Any) -> MaskRCNN:
    """torchvision's builder; beyond it, ``fpn_channels`` and ``anchor_sizes`` (for small images)."""
    return MaskRCNN(resnet_fpn_backbone_for_rcnn(block, layers, trainable_backbone_layers, fpn_channels),
                    num_classes, **rpn_anchors(anchor_sizes), **kwargs)


maskrcnn_resnet18_fpn = register_model(partial(_maskrcnn_resnet_fpn, BasicBlock, [2, 2, 2, 2]), "maskrcnn_resnet18_fpn")
maskrcnn_resnet50_fpn = register_model(partial(_maskrcnn_resnet_fpn, Bottleneck, [3, 4, 6, 3]), "maskrcnn_resnet50_fpn")
