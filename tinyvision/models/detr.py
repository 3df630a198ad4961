"""DETR: End-to-End Object Detection with Transformers (Carion et al. 2020).

Detection as set prediction: a CNN turns the image into a feature map, a transformer encoder
lets every position of it attend to every other, and a decoder turns Q learned *object queries*
into Q predictions (a class, or "no object", and a box) in one pass. Training matches the Q
predictions one-to-one with the objects (``HungarianMatcher``) and scores the matches
(``SetCriterion``), so there are no anchors, no assignment heuristics and no NMS.

    image (N, 3, H, W), normalised with the ImageNet mean/std
      -> backbone.0 (ResNet trunk, layer4: (N, 512 or 2048, H/32, W/32); H/16 with ``dilation`` or
         without the stem's max-pool)
      -> input_proj (1x1 conv to d_model) = src;  backbone.1 (sine position encoding) = pos
      -> transformer(src, pos, query_embed.weight) -> hs (L decoder layers, N, Q, d_model)
      -> class_embed (Linear, num_classes + 1: the last is "no object")  -> pred_logits
         bbox_embed  (3-layer MLP, sigmoid -> normalised cxcywh)          -> pred_boxes
      every decoder layer but the last through the same heads -> aux_outputs (auxiliary losses)

Keys follow the reference implementation: backbone.0.body.layer1.0.conv1.weight,
input_proj.weight, query_embed.weight, transformer.encoder.layers.0.self_attn.in_proj_weight,
transformer.decoder.norm.weight, class_embed.weight, bbox_embed.layers.2.weight. One
difference: the reference freezes ImageNet-pretrained BatchNorm statistics (FrozenBatchNorm2d,
no ``num_batches_tracked``); tinyvision trains from scratch, so the trunk has ordinary BatchNorm.
"""
from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from tinyvision import functional as F
from tinyvision.autograd.tensor import Tensor
from tinyvision.kernels.compat import to_device
from tinyvision.models._utils import IntermediateLayerGetter
from tinyvision.models.detection.detr_transformer import Transformer
from tinyvision.models.detection.position_encoding import PositionEmbeddingSine
from tinyvision.models.registry import register_model
from tinyvision.models.resnet import BasicBlock, Bottleneck, ResNet
from tinyvision.nn import Conv2d, Embedding, Identity, Linear, Module, ModuleList, Sequential
from tinyvision.ops.boxes import box_convert

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def normalise_images(images: Any) -> Tensor:
    """(N, 3, H, W) in [0, 1] (or a list of (3, H, W)) -> normalised with the ImageNet mean and std."""
    if isinstance(images, (list, tuple)):
        images = F.stack(list(images))
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (N, 3, H, W) (or a list of (3, H, W)), got {tuple(images.shape)}")
    shape = (1, 3, 1, 1)
    mean = to_device(np.asarray(IMAGENET_MEAN, dtype=images.dtype).reshape(shape), images.device)
    std = to_device(np.asarray(IMAGENET_STD, dtype=images.dtype).reshape(shape), images.device)
    return (images - Tensor(mean)) / Tensor(std)


class MLP(Module):
    """num_layers Linear layers with ReLU between them (not after the last); keys layers.<i>.*."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [input_dim] + [hidden_dim] * (num_layers - 1)
        self.layers = ModuleList([Linear(a, b) for a, b in zip(dims, dims[1:] + [output_dim])])

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == len(self.layers) - 1 else F.relu(layer(x))
        return x


class Backbone(Module):
    """The ResNet trunk up to layer4 (``body``); ``num_channels`` is layer4's width."""

    def __init__(self, trunk: ResNet) -> None:
        super().__init__()
        self.body = IntermediateLayerGetter(trunk, {"layer4": "0"})
        self.num_channels = 512 * (4 if isinstance(trunk.layer4[0], Bottleneck) else 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)["0"]


class Joiner(Sequential):
    """backbone.0 = the trunk, backbone.1 = the position encoding: x -> (features, pos)."""

    def __init__(self, backbone: Backbone, position_embedding: PositionEmbeddingSine) -> None:
        super().__init__(backbone, position_embedding)
        self.num_channels = backbone.num_channels

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self[0](x)
        return features, self[1](features).to(features.dtype)


class DETR(Module):
    """``model(images)`` -> {"pred_logits" (N, Q, num_classes + 1), "pred_boxes" (N, Q, 4) normalised
    cxcywh, "aux_outputs" (one such dict per decoder layer but the last, when ``aux_loss``)}.

    images: (N, 3, H, W) in [0, 1] (or a list of (3, H, W) of one size); normalised inside.
    ``postprocess(outputs, sizes)`` turns the outputs into torchvision-style detections.
    """

    def __init__(self, backbone: Joiner, transformer: Transformer, num_classes: int, num_queries: int = 100,
                 aux_loss: bool = True) -> None:
        super().__init__()
        hidden_dim = transformer.d_model
        self.num_queries, self.num_classes, self.aux_loss = num_queries, num_classes, aux_loss
        self.transformer = transformer
        self.class_embed = Linear(hidden_dim, num_classes + 1)
        self.bbox_embed = MLP(hidden_dim, hidden_dim, 4, 3)
        self.query_embed = Embedding(num_queries, hidden_dim)
        self.input_proj = Conv2d(backbone.num_channels, hidden_dim, kernel_size=1)
        self.backbone = backbone

    def forward(self, images: Any) -> dict[str, Any]:
        features, pos = self.backbone(normalise_images(images))
        hs, _ = self.transformer(self.input_proj(features), None, self.query_embed.weight, pos)
        outputs_class = self.class_embed(hs)                     # (L, N, Q, num_classes + 1)
        outputs_coord = self.bbox_embed(hs).sigmoid()            # (L, N, Q, 4) in (0, 1)
        out: dict[str, Any] = {"pred_logits": outputs_class[-1], "pred_boxes": outputs_coord[-1]}
        if self.aux_loss:
            out["aux_outputs"] = [{"pred_logits": a, "pred_boxes": b}
                                  for a, b in zip(list(outputs_class)[:-1], list(outputs_coord)[:-1])]
        return out

    @staticmethod
    def postprocess(outputs: dict[str, Any], sizes: list[tuple[int, int]]) -> list[dict[str, np.ndarray]]:
        """One dict per image: every query as a detection (no NMS), boxes (Q, 4) xyxy in pixels of
        an image of ``sizes[i]`` = (H, W), scores (Q,) = the best real class's probability, labels (Q,)."""
        logits = np.asarray(outputs["pred_logits"].detach().numpy(), dtype=np.float64)
        z = np.exp(logits - logits.max(-1, keepdims=True))
        prob = z / z.sum(-1, keepdims=True)
        scores, labels = prob[..., :-1].max(-1), prob[..., :-1].argmax(-1)
        boxes = box_convert(Tensor(outputs["pred_boxes"].detach().numpy()), "cxcywh", "xyxy").numpy()
        return [{"boxes": boxes[i] * np.array([w, h, w, h], dtype=boxes.dtype), "scores": scores[i],
                 "labels": labels[i].astype(np.int64)} for i, (h, w) in enumerate(sizes)]


# --------------------------------------------------------------------------- named variants

def _detr_resnet(block: type, layers: list[int], num_classes: int = 91, num_queries: int = 100,
                 hidden_dim: int = 256, nheads: int = 8, enc_layers: int = 6, dec_layers: int = 6,
                 dim_feedforward: int = 2048, dropout: float = 0.1, dilation: bool = False,
                 stem_pool: bool = True, aux_loss: bool = True) -> DETR:
    """The reference's defaults (d_model 256, 8 heads, 6 + 6 layers, FFN 2048, dropout 0.1, 100
    queries, 91 COCO ids). ``dilation=True`` is DETR-DC5 (layer4 dilated instead of strided: stride
    16; Bottleneck trunks only, as torchvision). ``stem_pool=False`` (tinyvision's option for small
    images) drops the stem's max-pool instead, which also halves the stride to 16 and works with
    BasicBlock trunks; the keys do not change (the pool has no parameters)."""
    trunk = ResNet(block, layers, replace_stride_with_dilation=[False, False, bool(dilation)])
    if not stem_pool:
        trunk.maxpool = Identity()
    backbone = Joiner(Backbone(trunk), PositionEmbeddingSine(hidden_dim // 2, normalize=True))
    transformer = Transformer(hidden_dim, nheads, enc_layers, dec_layers, dim_feedforward, dropout)
    return DETR(backbone, transformer, num_classes, num_queries, aux_loss)


detr_resnet18 = register_model(partial(_detr_resnet, BasicBlock, [2, 2, 2, 2]), "detr_resnet18")
detr_resnet50 = register_model(partial(_detr_resnet, Bottleneck, [3, 4, 6, 3]), "detr_resnet50")
