"""MaskFormer, small: segmentation as mask classification (Cheng et al. 2021).

Per-pixel classification (FCN, DeepLab, U-Net) gives each pixel a class, which cannot tell two
touching objects of one class apart. MaskFormer predicts instead a *set* of Q (class, mask)
pairs, as DETR predicts (class, box) pairs, and trains them with the same bipartite matching.
One model then serves all three tasks, only the inference differs:

    semantic:  S[c, x] = sum_q p_q(c) * sigmoid(m_q(x))                (then argmax over c)
    panoptic / instance: keep the queries with a confident real class; each pixel goes to the
               kept query with the highest p_q * sigmoid(m_q(x)); a query's segment is the
               pixels it won (dropped if it won too little of its own mask)

The model, top to bottom:

    image -> backbone (ResNet, stages 1-4: strides 4, 8, 16, 32)
          -> pixel decoder (FPN: lateral 1x1 convs, top-down nearest upsampling, 3x3 convs)
             -> per-pixel embeddings E (N, mask_dim, H/4, W/4)
          -> transformer decoder (DETR's, no encoder) on stage 4 + sine positions, Q queries
             -> per query: class_embed (num_classes + 1) and mask_embed (3-layer MLP -> mask_dim)
          -> mask logits m_q = <mask_embed_q, E(x)>: a dot product at every pixel
"""
from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from tinyvision import functional as F
from tinyvision.autograd.tensor import Tensor
from tinyvision.models._utils import IntermediateLayerGetter
from tinyvision.models.detection.detr_transformer import Transformer
from tinyvision.models.detection.position_encoding import PositionEmbeddingSine
from tinyvision.models.detr import MLP, normalise_images
from tinyvision.models.registry import register_model
from tinyvision.models.resnet import BasicBlock, ResNet
from tinyvision.nn import Conv2d, Embedding, GroupNorm, Identity, Linear, Module, ModuleList, Sequential


def _conv_gn(cin: int, cout: int, k: int) -> Sequential:
    return Sequential(Conv2d(cin, cout, k, padding=k // 2, bias=False), GroupNorm(min(32, cout // 4), cout))


class PixelDecoder(Module):
    """FPN over the backbone's stages (coarse to fine), ending at stride 4 with ``mask_dim`` channels."""

    def __init__(self, in_channels: list[int], conv_dim: int = 64, mask_dim: int = 64) -> None:
        super().__init__()
        self.lateral = ModuleList([_conv_gn(c, conv_dim, 1) for c in in_channels[:-1]])
        self.output = ModuleList([_conv_gn(conv_dim, conv_dim, 3) for _ in in_channels])
        self.top = _conv_gn(in_channels[-1], conv_dim, 3)
        self.mask_features = Conv2d(conv_dim, mask_dim, 3, padding=1)

    def forward(self, features: list[Tensor]) -> Tensor:
        """features: stages 1..4 (fine to coarse) -> (N, mask_dim, H1, W1) at stage 1's size."""
        y = F.relu(self.output[-1](F.relu(self.top(features[-1]))))
        for i in range(len(features) - 2, -1, -1):      # top-down: upsample, add the lateral
            x = F.relu(self.lateral[i](features[i]))
            y = x + F.interpolate(y, size=tuple(x.shape[-2:]), mode="nearest")
            y = F.relu(self.output[i](y))
        return self.mask_features(y)


class MaskFormer(Module):
    """``model(images (N, 3, H, W) in [0, 1])`` -> {"pred_logits" (N, Q, num_classes + 1),
    "pred_masks" (N, Q, H/4, W/4) logits, "aux_outputs"}; ``semantic`` and ``panoptic`` turn
    them into per-image results."""

    def __init__(self, trunk: ResNet, num_classes: int, num_queries: int = 20, hidden_dim: int = 128,
                 mask_dim: int = 64, nheads: int = 8, dec_layers: int = 3, dim_feedforward: int = 512,
                 dropout: float = 0.0, aux_loss: bool = True) -> None:
        super().__init__()
        widths = [64, 128, 256, 512] if isinstance(trunk.layer1[0], BasicBlock) else [256, 512, 1024, 2048]
        self.backbone = IntermediateLayerGetter(trunk, {f"layer{i}": str(i - 1) for i in range(1, 5)})
        self.pixel_decoder = PixelDecoder(widths, mask_dim, mask_dim)
        self.position = PositionEmbeddingSine(hidden_dim // 2, normalize=True)
        self.input_proj = Conv2d(widths[-1], hidden_dim, 1)
        self.transformer = Transformer(hidden_dim, nheads, 0, dec_layers, dim_feedforward, dropout)
        self.query_embed = Embedding(num_queries, hidden_dim)
        self.class_embed = Linear(hidden_dim, num_classes + 1)
        self.mask_embed = MLP(hidden_dim, hidden_dim, mask_dim, 3)
        self.num_classes, self.num_queries, self.aux_loss = num_classes, num_queries, aux_loss

    def forward(self, images: Any) -> dict[str, Any]:
        features = list(self.backbone(normalise_images(images)).values())
        pixel_embed = self.pixel_decoder(features)                          # (N, D, h, w)
        top = features[-1]
        hs, _ = self.transformer(self.input_proj(top), None, self.query_embed.weight, self.position(top).to(top.dtype))
        logits = self.class_embed(hs)                                       # (L, N, Q, K + 1)
        n, d, h, w = pixel_embed.shape
        # mask logits: one dot product per (layer, image, query, pixel)
        masks = (self.mask_embed(hs).unsqueeze(3) @ pixel_embed.reshape(1, n, d, h * w).unsqueeze(2)).reshape(
            hs.shape[0], n, hs.shape[2], h, w)
        out: dict[str, Any] = {"pred_logits": logits[-1], "pred_masks": masks[-1]}
        if self.aux_loss:
            out["aux_outputs"] = [{"pred_logits": logits[i], "pred_masks": masks[i]} for i in range(hs.shape[0] - 1)]
        return out

    @staticmethod
    def _probabilities(outputs: dict[str, Any], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Class probabilities (N, Q, K + 1) and mask probabilities (N, Q, H, W) at the image size."""
        logits = np.asarray(outputs["pred_logits"].detach().numpy(), np.float64)
        z = np.exp(logits - logits.max(-1, keepdims=True))
        masks = F.interpolate(outputs["pred_masks"].detach(), size=size, mode="bilinear", align_corners=False)
        return z / z.sum(-1, keepdims=True), 1 / (1 + np.exp(-np.asarray(masks.numpy(), np.float64)))

    @classmethod
    def semantic(cls, outputs: dict[str, Any], size: tuple[int, int]) -> np.ndarray:
        """(N, K, H, W) class scores: sum over queries of p_q(c) * sigmoid(m_q)."""
        prob, masks = cls._probabilities(outputs, size)
        return np.einsum("nqc,nqhw->nchw", prob[..., :-1], masks)

    @classmethod
    def panoptic(cls, outputs: dict[str, Any], size: tuple[int, int], score_thresh: float = 0.5,
                 overlap_thresh: float = 0.8) -> list[dict[str, np.ndarray]]:
        """Per image: disjoint segments {"masks" (S, H, W) bool, "labels" (S,), "scores" (S,)}."""
        prob, masks = cls._probabilities(outputs, size)
        results = []
        for p, m in zip(prob, masks):
            scores, labels = p[:, :-1].max(-1), p[:, :-1].argmax(-1)
            keep = np.nonzero((scores > score_thresh) & (p.argmax(-1) != p.shape[-1] - 1))[0]
            segs, labs, scs = [], [], []
            if len(keep):
                owner = np.argmax(scores[keep, None, None] * m[keep], axis=0)     # which kept query wins each pixel
                for k, q in enumerate(keep):
                    own = m[q] >= 0.5
                    seg = (owner == k) & own
                    if seg.sum() == 0 or seg.sum() < overlap_thresh * own.sum():
                        continue      # the query lost most of its mask to others: a duplicate
                    segs.append(seg)
                    labs.append(labels[q])
                    scs.append(scores[q])
            results.append({"masks": np.array(segs, dtype=bool).reshape(-1, *size),
                            "labels": np.array(labs, dtype=np.int64), "scores": np.array(scs)})
        return results


def _maskformer_resnet(block: type, layers: list[int], num_classes: int = 4, stem_pool: bool = True,
                       **kwargs: Any) -> MaskFormer:
    trunk = ResNet(block, layers)
    if not stem_pool:      # stride 2 instead of 4 at stage 1: finer masks on small images
        trunk.maxpool = Identity()
    return MaskFormer(trunk, num_classes, **kwargs)


maskformer_resnet18 = register_model(partial(_maskformer_resnet, BasicBlock, [2, 2, 2, 2]), "maskformer_resnet18")
