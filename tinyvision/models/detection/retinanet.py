"""RetinaNet (Lin, Goyal, Girshick, He, Dollar 2017: "Focal Loss for Dense Object Detection"),
with torchvision's structure and state_dict keys.

The paper's point: a one-stage detector can match two-stage accuracy if the training loss stops
being swamped by the ~100,000 easy background anchors per image. The recipe:

1. a ResNet + FPN backbone gives maps P3-P7 (strides 8-128), 256 channels each;
2. on every level, every position carries A = 9 anchors (3 sizes x 3 aspect ratios);
3. two small fully-convolutional subnets, shared by all levels, predict per anchor K class
   probabilities (the *classification subnet*, sigmoid outputs, no background class) and 4 box
   offsets (the *box subnet*, class-agnostic); each is four 3x3 conv + ReLU layers then a 3x3
   conv to A K or A 4 outputs;
4. training: an anchor is positive for the truth it overlaps with IoU >= 0.5 (and each truth keeps
   its best anchors), negative below 0.4, ignored in between; the classification loss is the
   *focal loss* summed over all non-ignored anchors, the box loss L1 on the positives' offsets,
   both divided by the number of positives;
5. the classifier's bias starts at -log((1 - pi) / pi), pi = 0.01, so every anchor first predicts
   "background" with confidence 0.99 and the flood of negatives cannot destabilise the start;
6. inference: per level, keep scores > 0.05, the top 1,000, decode their boxes; then NMS per class
   (IoU 0.5) over all levels, and the best 300 detections.
"""
from __future__ import annotations

import math
from functools import partial
from typing import Any, Callable

import numpy as np

from tinyvision import functional as F
from tinyvision.autograd.function import no_grad
from tinyvision.autograd.tensor import Tensor
from tinyvision.kernels.compat import array_module
from tinyvision.models.detection._utils import BoxCoder, Matcher, raw
from tinyvision.models.detection.anchor_utils import AnchorGenerator
from tinyvision.models.detection.backbone_utils import resnet_fpn_extractor
from tinyvision.models.detection.transform import GeneralizedRCNNTransform
from tinyvision.models.registry import register_model
from tinyvision.models.resnet import BasicBlock, Bottleneck, ResNet
from tinyvision.nn import Conv2d, GroupNorm, Module, ReLU, Sequential, init
from tinyvision.ops import batched_nms, box_iou, clip_boxes_to_image, sigmoid_focal_loss
from tinyvision.ops.feature_pyramid_network import LastLevelP6P7


# --------------------------------------------------------------------------- the two subnets

def _subnet_trunk(channels: int, norm_layer: Callable[..., Module] | None) -> Sequential:
    """Four 3x3 conv (+ norm) + ReLU layers; torchvision's keys conv.{i}.0.weight."""
    layers = []
    for _ in range(4):
        conv = Conv2d(channels, channels, 3, padding=1, bias=norm_layer is None)
        layers.append(Sequential(conv, norm_layer(channels), ReLU()) if norm_layer else Sequential(conv, ReLU()))
    trunk = Sequential(*layers)
    for m in trunk.modules():
        if isinstance(m, Conv2d):          # the paper: Gaussian weights, sigma = 0.01, zero biases
            init.normal_(m.weight, std=0.01)
            if m.bias is not None:
                init.constant_(m.bias, 0)
    return trunk


def _per_anchor(x: Tensor, values: int) -> Tensor:
    """(N, A * values, H, W) -> (N, H * W * A, values): position-major, then anchor (the anchors' order)."""
    N, _, H, W = x.shape
    return x.view(N, -1, values, H, W).permute(0, 3, 4, 1, 2).reshape(N, -1, values)


class RetinaNetClassificationHead(Module):
    """Per anchor, K class logits (independent sigmoids: an anchor may be nothing)."""

    def __init__(self, in_channels: int, num_anchors: int, num_classes: int, prior_probability: float = 0.01,
                 norm_layer: Callable[..., Module] | None = None) -> None:
        super().__init__()
        self.conv = _subnet_trunk(in_channels, norm_layer)
        self.cls_logits = Conv2d(in_channels, num_anchors * num_classes, 3, padding=1)
        init.normal_(self.cls_logits.weight, std=0.01)
        # sigmoid(bias) = prior_probability: start out predicting background everywhere
        init.constant_(self.cls_logits.bias, -math.log((1 - prior_probability) / prior_probability))
        self.num_classes, self.num_anchors = num_classes, num_anchors

    def forward(self, x: list[Tensor]) -> Tensor:
        return F.cat([_per_anchor(self.cls_logits(self.conv(f)), self.num_classes) for f in x], dim=1)

    def compute_loss(self, targets: list[dict], cls_logits: Tensor, matched_idxs: list[Any]) -> Tensor:
        """Focal loss over every anchor that is not ignored, / number of positives, mean over images."""
        losses = []
        for i, (target, matched) in enumerate(zip(targets, matched_idxs)):
            logits = cls_logits[i]
            xp = array_module(logits.data)
            foreground = matched >= 0
            one_hot = xp.zeros(logits.shape, dtype=logits.dtype)
            labels = raw(target["labels"])
            one_hot[xp.nonzero(foreground)[0], labels[matched[foreground]]] = 1.0
            valid = xp.nonzero(matched != Matcher.BETWEEN_THRESHOLDS)[0]
            loss = sigmoid_focal_loss(logits[valid], Tensor(one_hot[valid]), reduction="sum")
            losses.append(loss / max(1, int(foreground.sum())))
        return sum(losses[1:], losses[0]) / len(targets)


class RetinaNetRegressionHead(Module):
    """Per anchor, 4 offsets (dx, dy, dw, dh) of the box from the anchor (class-agnostic)."""

    def __init__(self, in_channels: int, num_anchors: int, norm_layer: Callable[..., Module] | None = None) -> None:
        super().__init__()
        self.conv = _subnet_trunk(in_channels, norm_layer)
        self.bbox_reg = Conv2d(in_channels, num_anchors * 4, 3, padding=1)
        init.normal_(self.bbox_reg.weight, std=0.01)
        init.zeros_(self.bbox_reg.bias)
        self.box_coder = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))

    def forward(self, x: list[Tensor]) -> Tensor:
        return F.cat([_per_anchor(self.bbox_reg(self.conv(f)), 4) for f in x], dim=1)

    def compute_loss(self, targets: list[dict], bbox_regression: Tensor, anchors: list[Tensor],
                     matched_idxs: list[Any]) -> Tensor:
        """L1 between predicted and target offsets of the positive anchors, / number of positives."""
        losses = []
        for i, (target, anchors_i, matched) in enumerate(zip(targets, anchors, matched_idxs)):
            xp = array_module(matched)
            fg = xp.nonzero(matched >= 0)[0]
            boxes = raw(target["boxes"])
            wanted = self.box_coder.encode_single(boxes[matched[fg]], raw(anchors_i)[fg])
            losses.append(F.l1_loss(bbox_regression[i][fg], wanted, reduction="sum") / max(1, len(fg)))
        return sum(losses[1:], losses[0]) / max(1, len(targets))


class RetinaNetHead(Module):
    def __init__(self, in_channels: int, num_anchors: int, num_classes: int,
                 norm_layer: Callable[..., Module] | None = None) -> None:
        super().__init__()
        self.classification_head = RetinaNetClassificationHead(in_channels, num_anchors, num_classes,
                                                               norm_layer=norm_layer)
        self.regression_head = RetinaNetRegressionHead(in_channels, num_anchors, norm_layer=norm_layer)

    def forward(self, x: list[Tensor]) -> dict[str, Tensor]:
        return {"cls_logits": self.classification_head(x), "bbox_regression": self.regression_head(x)}

    def compute_loss(self, targets, head_outputs, anchors, matched_idxs) -> dict[str, Tensor]:
        return {"classification": self.classification_head.compute_loss(targets, head_outputs["cls_logits"],
                                                                        matched_idxs),
                "bbox_regression": self.regression_head.compute_loss(targets, head_outputs["bbox_regression"],
                                                                     anchors, matched_idxs)}


# --------------------------------------------------------------------------- the detector

def check_targets(targets: list[dict] | None, n_images: int) -> None:
    """Training targets: one dict per image with boxes (N, 4) xyxy of positive size and labels (N,)."""
    if targets is None:
        raise ValueError("targets should not be None in training mode")
    if len(targets) != n_images:
        raise ValueError(f"got {n_images} images but {len(targets)} targets")
    for i, t in enumerate(targets):
        boxes = raw(t.get("boxes"))
        if boxes is None or boxes.ndim != 2 or boxes.shape[-1] != 4:
            raise ValueError(f"targets[{i}]['boxes'] must be a (N, 4) tensor, got "
                             f"{None if boxes is None else tuple(boxes.shape)}")
        if len(raw(t.get("labels", np.zeros(0)))) != len(boxes):
            raise ValueError(f"targets[{i}] has {len(boxes)} boxes but {len(raw(t.get('labels', [])))} labels")
        if boxes.size and not bool(array_module(boxes).isfinite(boxes).all()):
            raise ValueError(f"targets[{i}]['boxes'] has NaN or inf coordinates")
        degenerate = (boxes[:, 2:] <= boxes[:, :2]).any(axis=1)
        if bool(degenerate.any()):
            j = int(array_module(boxes).argmax(degenerate))
            raise ValueError(f"All bounding boxes should have positive height and width. Found invalid box "
                             f"{boxes[j].tolist()} for target at index {i}.")


class RetinaNet(Module):
    """``model(images)`` in eval mode -> one dict per image: boxes (D, 4) xyxy in the input image's
    pixels, scores (D,), labels (D,); in train mode ``model(images, targets)`` -> the losses
    {"classification", "bbox_regression"}. ``images``: a list of (3, H, W) tensors in [0, 1]."""

    def __init__(self, backbone: Module, num_classes: int, min_size: int = 800, max_size: int = 1333,
                 image_mean: list[float] | None = None, image_std: list[float] | None = None,
                 anchor_generator: AnchorGenerator | None = None, head: Module | None = None,
                 proposal_matcher: Matcher | None = None, score_thresh: float = 0.05, nms_thresh: float = 0.5,
                 detections_per_img: int = 300, fg_iou_thresh: float = 0.5, bg_iou_thresh: float = 0.4,
                 topk_candidates: int = 1000) -> None:
        super().__init__()
        self.backbone = backbone
        if anchor_generator is None:  # 3 sizes per octave (x 2^0, 2^(1/3), 2^(2/3)), 32 .. 512 px on P3 .. P7
            sizes = tuple((x, int(x * 2 ** (1.0 / 3)), int(x * 2 ** (2.0 / 3))) for x in [32, 64, 128, 256, 512])
            anchor_generator = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))
        self.anchor_generator = anchor_generator
        self.head = head or RetinaNetHead(backbone.out_channels, anchor_generator.num_anchors_per_location()[0],
                                          num_classes)
        self.proposal_matcher = proposal_matcher or Matcher(fg_iou_thresh, bg_iou_thresh, allow_low_quality_matches=True)
        self.box_coder = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
        self.transform = GeneralizedRCNNTransform(min_size, max_size, image_mean or [0.485, 0.456, 0.406],
                                                  image_std or [0.229, 0.224, 0.225])
        self.score_thresh, self.nms_thresh = score_thresh, nms_thresh
        self.detections_per_img, self.topk_candidates = detections_per_img, topk_candidates
        self.num_classes = num_classes

    def compute_loss(self, targets: list[dict], head_outputs: dict[str, Tensor], anchors: list[Tensor]) -> dict:
        matched_idxs = []
        for anchors_i, target in zip(anchors, targets):
            boxes = raw(target["boxes"])
            if boxes.size == 0:          # no objects: every anchor is background
                matched_idxs.append(array_module(boxes).full(anchors_i.shape[0], -1, dtype=np.int64))
                continue
            matched_idxs.append(self.proposal_matcher(box_iou(Tensor(boxes), anchors_i)).data)
        return self.head.compute_loss(targets, head_outputs, anchors, matched_idxs)

    def postprocess_detections(self, head_outputs: dict[str, list], anchors: list[list], image_shapes: list) -> list:
        detections = []
        for i, image_shape in enumerate(image_shapes):
            boxes_all, scores_all, labels_all = [], [], []
            for regression, logits, anchors_l in zip(head_outputs["bbox_regression"], head_outputs["cls_logits"],
                                                     anchors[i]):
                logits, regression = raw(logits)[i], raw(regression)[i]
                xp = array_module(logits)
                num_classes = logits.shape[-1]
                scores = (1 / (1 + xp.exp(-logits))).reshape(-1)
                candidates = xp.nonzero(scores > self.score_thresh)[0]
                best = xp.argsort(-scores[candidates], kind="stable")[:self.topk_candidates]
                top = candidates[best]
                anchor_idx, labels = top // num_classes, top % num_classes
                boxes = self.box_coder.decode_single(regression[anchor_idx], raw(anchors_l)[anchor_idx])
                boxes_all.append(clip_boxes_to_image(boxes, image_shape).data)
                scores_all.append(scores[top])
                labels_all.append(labels)
            xp = array_module(boxes_all[0])
            boxes, scores, labels = (xp.concatenate(v) for v in (boxes_all, scores_all, labels_all))
            keep = batched_nms(Tensor(boxes), Tensor(scores), Tensor(labels), self.nms_thresh).data
            keep = keep[:self.detections_per_img]
            detections.append({"boxes": Tensor(boxes[keep]), "scores": Tensor(scores[keep]),
                               "labels": Tensor(labels[keep].astype(np.int64))})
        return detections

    def forward(self, images: list[Tensor] | Tensor, targets: list[dict] | None = None):
        if isinstance(images, Tensor):   # a stacked batch (N, 3, H, W): images of one size
            if images.ndim != 4:
                raise ValueError(f"images must be a list of (3, H, W) tensors or a (N, 3, H, W) tensor, got "
                                 f"shape {tuple(images.shape)}")
            images = [images[i] for i in range(images.shape[0])]
        if self.training:
            check_targets(targets, len(images))
        original_sizes = [tuple(int(s) for s in im.shape[-2:]) for im in images]
        image_list, targets = self.transform(list(images), targets)
        features = list(self.backbone(image_list.tensors).values())
        head_outputs = self.head(features)
        anchors = self.anchor_generator(image_list, features)
        if self.training:
            return self.compute_loss(targets, head_outputs, anchors)
        # split the outputs and anchors per level: the postprocessing keeps top-k per level
        hw = [f.shape[2] * f.shape[3] for f in features]
        A = head_outputs["cls_logits"].shape[1] // sum(hw)
        bounds = np.cumsum([0] + [n * A for n in hw])
        split = {k: [v[:, a:b] for a, b in zip(bounds[:-1], bounds[1:])] for k, v in head_outputs.items()}
        split_anchors = [[a[s:e] for s, e in zip(bounds[:-1], bounds[1:])] for a in anchors]
        with no_grad():
            detections = self.postprocess_detections(split, split_anchors, image_list.image_sizes)
        return self.transform.postprocess(detections, image_list.image_sizes, original_sizes)


# --------------------------------------------------------------------------- named variants

def _retinanet_resnet_fpn(block, layers, num_classes: int = 91, trainable_backbone_layers: int = 5,
                          fpn_channels: int = 256, anchor_sizes: tuple | None = None, head_norm: bool = False,
                          **kwargs: Any) -> RetinaNet:
    """A ResNet (random init: BatchNorm, as torchvision without pretrained weights) with P3-P7:
    C3-C5 through the FPN, P6 and P7 from P5 (torchvision's v1 model).

    Options beyond torchvision's builder (the defaults are torchvision's): ``fpn_channels`` (256),
    ``anchor_sizes`` (one base size per level, default 32..512), ``head_norm=True`` puts GroupNorm(32)
    after each subnet conv as torchvision's v2 head does: without it, four convs initialised with
    sigma = 0.01 shrink the signal ~30x and a head trained from scratch barely moves at first."""
    trunk = ResNet(block, layers)
    backbone = resnet_fpn_extractor(trunk, trainable_backbone_layers, returned_layers=[2, 3, 4],
                                    extra_blocks=LastLevelP6P7(fpn_channels, fpn_channels), out_channels=fpn_channels)
    if anchor_sizes is not None:  # one base size per level, 3 sizes per octave as the paper
        sizes = tuple((x, int(x * 2 ** (1.0 / 3)), int(x * 2 ** (2.0 / 3))) for x in anchor_sizes)
        kwargs["anchor_generator"] = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))
    if head_norm:
        kwargs["head"] = RetinaNetHead(fpn_channels, 9, num_classes, norm_layer=partial(GroupNorm, 32))
    return RetinaNet(backbone, num_classes, **kwargs)


retinanet_resnet18_fpn = register_model(partial(_retinanet_resnet_fpn, BasicBlock, [2, 2, 2, 2]),
                                        "retinanet_resnet18_fpn")
retinanet_resnet50_fpn = register_model(partial(_retinanet_resnet_fpn, Bottleneck, [3, 4, 6, 3]),
                                        "retinanet_resnet50_fpn")
