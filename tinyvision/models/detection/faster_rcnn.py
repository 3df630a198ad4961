"""Faster R-CNN (Ren, He, Girshick, Sun 2015) with an FPN (Lin et al. 2017), torchvision's
``FasterRCNN`` structure and keys (``backbone.*``, ``rpn.head.*``, ``roi_heads.box_head.fc6.*``,
``roi_heads.box_predictor.*``).

Two stages over one shared backbone:

1. **propose** (tinyvision/models/detection/rpn.py): the Region Proposal Network scores 3
   anchors at every position of P2-P6 (one size per level, 32-512 px, three aspect ratios) as
   object or not and regresses them into ~1,000 proposals per image;
2. **classify and refine** (roi_heads.py): MultiScaleRoIAlign cuts a 7x7 feature grid for each
   proposal out of the level that suits its size; two fully connected layers (1024 wide) give
   per-class scores (softmax, background = class 0) and per-class box offsets.

In training the losses of both stages add up (objectness, RPN boxes, classifier, boxes). The
image goes through GeneralizedRCNNTransform first (normalise, resize, pad to a multiple of 32).
"""
from __future__ import annotations

from functools import partial
from typing import Any

from tinyvision import functional as F
from tinyvision.autograd.tensor import Tensor
from tinyvision.models.detection.anchor_utils import AnchorGenerator
from tinyvision.models.detection.backbone_utils import resnet_fpn_extractor
from tinyvision.models.detection.retinanet import check_targets
from tinyvision.models.detection.roi_heads import RoIHeads
from tinyvision.models.detection.rpn import RegionProposalNetwork, RPNHead
from tinyvision.models.detection.transform import GeneralizedRCNNTransform
from tinyvision.models.registry import register_model
from tinyvision.models.resnet import BasicBlock, Bottleneck, ResNet
from tinyvision.nn import Linear, Module
from tinyvision.ops.poolers import MultiScaleRoIAlign


class TwoMLPHead(Module):
    """Flatten the pooled RoI features, then fc6 and fc7 with ReLUs."""

    def __init__(self, in_channels: int, representation_size: int) -> None:
        super().__init__()
        self.fc6 = Linear(in_channels, representation_size)
        self.fc7 = Linear(representation_size, representation_size)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.fc7(F.relu(self.fc6(x.flatten(1)))))


class FastRCNNPredictor(Module):
    """Class scores (num_classes, background included) and per-class box offsets (4 each)."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.cls_score = Linear(in_channels, num_classes)
        self.bbox_pred = Linear(in_channels, num_classes * 4)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = x.flatten(1)
        return self.cls_score(x), self.bbox_pred(x)


class FasterRCNN(Module):
    """``model(images)`` in eval mode -> per image {boxes, labels, scores} in the input's pixels;
    in train mode ``model(images, targets)`` -> {loss_classifier, loss_box_reg, loss_objectness,
    loss_rpn_box_reg}. The arguments and defaults are torchvision's."""

    def __init__(self, backbone: Module, num_classes: int, min_size: int = 800, max_size: int = 1333,
                 image_mean: list | None = None, image_std: list | None = None,
                 rpn_anchor_generator: AnchorGenerator | None = None, rpn_head: Module | None = None,
                 rpn_pre_nms_top_n_train: int = 2000, rpn_pre_nms_top_n_test: int = 1000,
                 rpn_post_nms_top_n_train: int = 2000, rpn_post_nms_top_n_test: int = 1000,
                 rpn_nms_thresh: float = 0.7, rpn_fg_iou_thresh: float = 0.7, rpn_bg_iou_thresh: float = 0.3,
                 rpn_batch_size_per_image: int = 256, rpn_positive_fraction: float = 0.5,
                 rpn_score_thresh: float = 0.0, box_roi_pool: Module | None = None, box_head: Module | None = None,
                 box_predictor: Module | None = None, box_score_thresh: float = 0.05, box_nms_thresh: float = 0.5,
                 box_detections_per_img: int = 100, box_fg_iou_thresh: float = 0.5, box_bg_iou_thresh: float = 0.5,
                 box_batch_size_per_image: int = 512, box_positive_fraction: float = 0.25,
                 bbox_reg_weights: tuple | None = None, **mask_parts: Any) -> None:
        super().__init__()
        out_channels = backbone.out_channels
        self.transform = GeneralizedRCNNTransform(min_size, max_size, image_mean or [0.485, 0.456, 0.406],
                                                  image_std or [0.229, 0.224, 0.225])
        self.backbone = backbone
        if rpn_anchor_generator is None:   # one size per level P2..P6, three aspect ratios
            sizes = ((32,), (64,), (128,), (256,), (512,))
            rpn_anchor_generator = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))
        rpn_head = rpn_head or RPNHead(out_channels, rpn_anchor_generator.num_anchors_per_location()[0])
        self.rpn = RegionProposalNetwork(
            rpn_anchor_generator, rpn_head, rpn_fg_iou_thresh, rpn_bg_iou_thresh, rpn_batch_size_per_image,
            rpn_positive_fraction, dict(training=rpn_pre_nms_top_n_train, testing=rpn_pre_nms_top_n_test),
            dict(training=rpn_post_nms_top_n_train, testing=rpn_post_nms_top_n_test), rpn_nms_thresh,
            score_thresh=rpn_score_thresh)
        box_roi_pool = box_roi_pool or MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)
        resolution = box_roi_pool.output_size[0]
        box_head = box_head or TwoMLPHead(out_channels * resolution ** 2, 1024)
        box_predictor = box_predictor or FastRCNNPredictor(1024, num_classes)
        self.roi_heads = RoIHeads(box_roi_pool, box_head, box_predictor, box_fg_iou_thresh, box_bg_iou_thresh,
                                  box_batch_size_per_image, box_positive_fraction, bbox_reg_weights,
                                  box_score_thresh, box_nms_thresh, box_detections_per_img, **mask_parts)
        self.num_classes = num_classes

    def forward(self, images: list[Tensor] | Tensor, targets: list[dict] | None = None):
        if isinstance(images, Tensor):
            images = [images[i] for i in range(images.shape[0])]
        if self.training:
            check_targets(targets, len(images))
        original_sizes = [tuple(int(s) for s in im.shape[-2:]) for im in images]
        image_list, targets = self.transform(list(images), targets)
        features = self.backbone(image_list.tensors)
        proposals, proposal_losses = self.rpn(image_list, features, targets)
        detections, detector_losses = self.roi_heads(features, proposals, image_list.image_sizes, targets)
        if self.training:
            return {**detector_losses, **proposal_losses}
        return self.transform.postprocess(detections, image_list.image_sizes, original_sizes)


def resnet_fpn_backbone_for_rcnn(block, layers, trainable_backbone_layers: int = 5, fpn_channels: int = 256):
    """A ResNet with all four stages through the FPN and a max-pooled extra level ("pool")."""
    return resnet_fpn_extractor(ResNet(block, layers), trainable_backbone_layers, out_channels=fpn_channels)


def rpn_anchors(anchor_sizes: list[int] | None) -> dict[str, Any]:
    """``anchor_sizes`` (one size per level P2..P6, default 32..512) as the RPN's anchor generator."""
    if anchor_sizes is None:
        return {}
    sizes = tuple((int(s),) for s in anchor_sizes)
    return {"rpn_anchor_generator": AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))}


def _fasterrcnn_resnet_fpn(block, layers, num_classes: int = 91, trainable_backbone_layers: int = 5,
                           fpn_channels: int = 256, anchor_sizes: list[int] | None = None, **kwargs: Any) -> FasterRCNN:
    """torchvision's builder; beyond it, ``fpn_channels`` and ``anchor_sizes`` (for small images)."""
    return FasterRCNN(resnet_fpn_backbone_for_rcnn(block, layers, trainable_backbone_layers, fpn_channels),
                      num_classes, **rpn_anchors(anchor_sizes), **kwargs)


fasterrcnn_resnet18_fpn = register_model(partial(_fasterrcnn_resnet_fpn, BasicBlock, [2, 2, 2, 2]),
                                         "fasterrcnn_resnet18_fpn")
fasterrcnn_resnet50_fpn = register_model(partial(_fasterrcnn_resnet_fpn, Bottleneck, [3, 4, 6, 3]),
                                         "fasterrcnn_resnet50_fpn")
