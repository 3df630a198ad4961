"""A small promptable segmenter in the design of SAM (Segment Anything, Kirillov et al. 2023).

SAM answers a *prompt* (here: clicks and boxes) with masks. Three parts, light to heavy in
reverse order of how often they run:

    image encoder (once per image):  the zoo's ResNet18 up to layer3 + a 1x1 neck
                                     -> image embedding (N, C, h, w)
    prompt encoder (per prompt):     each point / box corner -> a C-vector:
                                     random-Fourier encoding of its position + a learned
                                     embedding of its type (foreground click, background
                                     click, box top-left, box bottom-right; padding)
    mask decoder (per prompt):       output tokens (1 IoU token + K mask tokens) + prompt tokens
                                     attend to the image and the image attends back
                                     (the two-way transformer), then each mask token, through
                                     an MLP, is dotted with the upsampled image embedding
                                     -> K masks (N, K, 4h, 4w) and their predicted IoU (N, K)

Random-Fourier positional encoding (Tancik et al. 2020): a fixed Gaussian matrix G (2, C/2)
maps a position p in [0, 1]^2 to [sin(2 pi (2p - 1) G), cos(2 pi (2p - 1) G)]; nearby points get
similar codes and the code resolves positions finely enough for pixel-level masks. The image
embedding's grid gets the same code at every cell centre (``dense_pe``), so a click and the
pixels it lands on are comparable in attention.

Several masks per prompt because one click is ambiguous (a part, the object, a group): with
``multimask_output`` the decoder returns K - 1 = 3 masks and the loss trains only the best one
(the minimum over masks); the IoU head learns to say which one that is.
"""
from __future__ import annotations

import math
from functools import partial
from typing import Any

import numpy as np

from tinyvision import functional as F
from tinyvision.autograd.tensor import Tensor
from tinyvision.models._utils import IntermediateLayerGetter
from tinyvision.models.detr import MLP, normalise_images
from tinyvision.models.registry import register_model
from tinyvision.models.resnet import BasicBlock, ResNet
from tinyvision.nn import (GELU, Conv2d, ConvTranspose2d, Embedding, GroupNorm, Identity, LayerNorm, Module,
                           ModuleList, MultiheadAttention, Sequential)

# point labels, as SAM: 1 foreground click, 0 background click, 2 / 3 box corners, -1 padding
POINT_TYPES = 4


class PositionEmbeddingRandom(Module):
    """Random-Fourier features of 2-D positions in [0, 1]: (..., 2) -> (..., 2 * num_pos_feats)."""

    def __init__(self, num_pos_feats: int = 64, scale: float = 1.0) -> None:
        super().__init__()
        rng = np.random.default_rng(0)      # fixed: part of the model, stored as a buffer
        self.register_buffer("positional_encoding_gaussian_matrix",
                             Tensor((scale * rng.standard_normal((2, num_pos_feats))).astype(np.float32)))

    def encode(self, coords: Tensor) -> Tensor:
        g = self.positional_encoding_gaussian_matrix.to(coords.dtype)
        phase = (2 * coords - 1) @ g * (2 * math.pi)
        return F.cat([F.sin(phase), F.cos(phase)], -1)

    def grid(self, h: int, w: int, dtype: Any = np.float32) -> Tensor:
        """(2 * num_pos_feats, h, w): the code of every cell centre of an h x w grid."""
        ys, xs = (np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w
        coords = np.stack(np.meshgrid(xs, ys), -1).astype(dtype)               # (h, w, 2) as (x, y)
        return self.encode(Tensor(coords)).permute(2, 0, 1)


class PromptEncoder(Module):
    """Points (N, P, 2) in pixels (x, y) with labels (N, P), and/or boxes (N, 4) xyxy, -> sparse
    tokens (N, P', C); ``dense`` is the learned "no mask" embedding broadcast to the image grid."""

    def __init__(self, embed_dim: int, image_size: int) -> None:
        super().__init__()
        self.embed_dim, self.image_size = embed_dim, image_size
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        self.point_embeddings = ModuleList([Embedding(1, embed_dim) for _ in range(POINT_TYPES)])
        self.not_a_point_embed = Embedding(1, embed_dim)
        self.no_mask_embed = Embedding(1, embed_dim)

    def _check(self, name: str, coords: np.ndarray) -> None:
        size = self.image_size
        if coords.size and ((coords < 0).any() or (coords > size).any()):
            bad = coords[((coords < 0) | (coords > size)).any(-1)][0].tolist()
            raise ValueError(f"{name}: {bad} lies outside the {size}x{size} image (coordinates are pixels, 0 .. {size})")

    def forward(self, points: tuple[Any, Any] | None = None, boxes: Any = None) -> Tensor:
        tokens, dtype = [], self.no_mask_embed.weight.dtype
        if points is not None:
            coords, labels = (np.asarray(x.numpy() if isinstance(x, Tensor) else x) for x in points)
            self._check("point", coords[labels >= 0])
            pe = self.pe_layer.encode(Tensor((coords + 0.5).astype(dtype) / self.image_size))  # pixel centres
            if boxes is None:      # SAM pads a prompt of points only with one "not a point"
                coords = np.concatenate([coords, np.zeros_like(coords[:, :1])], 1)
                labels = np.concatenate([labels, -np.ones_like(labels[:, :1])], 1)
                pe = F.cat([pe, pe[:, :1] * 0.0], 1)
            type_embed = [self.not_a_point_embed.weight] + [e.weight for e in self.point_embeddings[:2]]
            table = F.cat(type_embed, 0)                                  # rows: -1, 0, 1 -> 0, 1, 2
            embed = table[labels + 1]
            pe = pe * Tensor((labels >= 0).astype(dtype)[..., None])      # padding has no position
            tokens.append(pe + embed)
        if boxes is not None:
            b = np.asarray(boxes.numpy() if isinstance(boxes, Tensor) else boxes, dtype=dtype).reshape(-1, 2, 2)
            self._check("box corner", b.reshape(-1, 2))
            pe = self.pe_layer.encode(Tensor((b + 0.5) / self.image_size))            # (N, 2, C)
            tokens.append(pe + F.cat([self.point_embeddings[2].weight, self.point_embeddings[3].weight], 0))
        if not tokens:
            raise ValueError("PromptEncoder: give points and/or boxes")
        return F.cat(tokens, 1)


class TwoWayAttentionBlock(Module):
    """Tokens attend to themselves, then to the image; an MLP; then the image attends to the
    tokens. Positions (the prompt tokens' own values and the image's dense code) are added to
    the queries and keys of every attention, never to the values (as DETR)."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, skip_first_layer_pe: bool = False) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(dim, heads, batch_first=True)
        self.cross_attn_token_to_image = MultiheadAttention(dim, heads, batch_first=True)
        self.cross_attn_image_to_token = MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = MLP(dim, mlp_dim, dim, 2)
        self.norm1, self.norm2, self.norm3, self.norm4 = (LayerNorm(dim) for _ in range(4))
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(self, queries: Tensor, keys: Tensor, query_pe: Tensor, key_pe: Tensor) -> tuple[Tensor, Tensor]:
        if self.skip_first_layer_pe:     # the first layer's queries are the prompt tokens themselves
            queries = self.self_attn(queries, queries, queries, need_weights=False)[0]
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries, need_weights=False)[0]
        queries = self.norm1(queries)
        queries = self.norm2(queries + self.cross_attn_token_to_image(queries + query_pe, keys + key_pe, keys,
                                                                      need_weights=False)[0])
        queries = self.norm3(queries + self.mlp(queries))
        keys = self.norm4(keys + self.cross_attn_image_to_token(keys + key_pe, queries + query_pe, queries,
                                                                need_weights=False)[0])
        return queries, keys


class TwoWayTransformer(Module):
    def __init__(self, depth: int, dim: int, heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.layers = ModuleList([TwoWayAttentionBlock(dim, heads, mlp_dim, skip_first_layer_pe=i == 0)
                                  for i in range(depth)])
        self.final_attn_token_to_image = MultiheadAttention(dim, heads, batch_first=True)
        self.norm_final_attn = LayerNorm(dim)

    def forward(self, image: Tensor, image_pe: Tensor, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """image, image_pe (N, C, h, w); tokens (N, T, C) -> (tokens (N, T, C), image (N, h*w, C))."""
        keys, key_pe = image.flatten(2).transpose(1, 2), image_pe.flatten(2).transpose(1, 2)
        queries = tokens
        for layer in self.layers:
            queries, keys = layer(queries, keys, tokens, key_pe)
        q = queries + tokens
        queries = self.norm_final_attn(queries + self.final_attn_token_to_image(q, keys + key_pe, keys,
                                                                               need_weights=False)[0])
        return queries, keys


class MaskDecoder(Module):
    """(image embedding, dense pe, prompt tokens) -> masks (N, K, 4h, 4w) logits, iou (N, K)."""

    def __init__(self, dim: int, num_multimask_outputs: int = 3, depth: int = 2, heads: int = 4,
                 mlp_dim: int = 256) -> None:
        super().__init__()
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = Embedding(1, dim)
        self.mask_tokens = Embedding(self.num_mask_tokens, dim)
        self.transformer = TwoWayTransformer(depth, dim, heads, mlp_dim)
        # 4x upsampling of the image embedding, to dim / 8 channels (SAM's LayerNorm2d: GroupNorm(1))
        self.output_upscaling = Sequential(ConvTranspose2d(dim, dim // 4, 2, stride=2), GroupNorm(1, dim // 4), GELU(),
                                           ConvTranspose2d(dim // 4, dim // 8, 2, stride=2), GELU())
        self.output_hypernetworks_mlps = ModuleList([MLP(dim, dim, dim // 8, 3) for _ in range(self.num_mask_tokens)])
        self.iou_prediction_head = MLP(dim, dim, self.num_mask_tokens, 3)

    def forward(self, image: Tensor, image_pe: Tensor, sparse: Tensor, dense: Tensor,
                multimask_output: bool = True) -> tuple[Tensor, Tensor]:
        n = sparse.shape[0]
        output = F.cat([self.iou_token.weight, self.mask_tokens.weight], 0)
        tokens = F.cat([output.unsqueeze(0).expand(n, *output.shape), sparse], 1)
        src = image + dense
        pe = image_pe.unsqueeze(0).expand(n, *image_pe.shape)
        hs, src = self.transformer(src, pe, tokens)
        c, h, w = image.shape[1:]
        up = self.output_upscaling(src.transpose(1, 2).reshape(n, c, h, w))          # (N, C/8, 4h, 4w)
        hyper = F.stack([mlp(hs[:, 1 + i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], 1)
        masks = (hyper @ up.flatten(2)).reshape(n, self.num_mask_tokens, *up.shape[-2:])
        iou = self.iou_prediction_head(hs[:, 0])
        if multimask_output:
            return masks[:, 1:], iou[:, 1:]
        return masks[:, :1], iou[:, :1]


class PromptSegmenter(Module):
    """``model(images, points=(coords (N, P, 2), labels (N, P)), boxes=(N, 4))`` -> masks (N, K, H, W)
    logits at the image size, iou_predictions (N, K). Coordinates are pixels (x, y)."""

    def __init__(self, trunk: ResNet, image_size: int = 64, embed_dim: int = 64, mask_decoder_depth: int = 2) -> None:
        super().__init__()
        self.image_size = image_size
        self.image_encoder = IntermediateLayerGetter(trunk, {"layer3": "0"})
        self.neck = Conv2d(256, embed_dim, 1)
        self.prompt_encoder = PromptEncoder(embed_dim, image_size)
        self.mask_decoder = MaskDecoder(embed_dim, depth=mask_decoder_depth, heads=4, mlp_dim=4 * embed_dim)

    def embed_image(self, images: Any) -> Tensor:
        x = normalise_images(images)
        if tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            raise ValueError(f"PromptSegmenter: images must be {self.image_size}x{self.image_size}, got {tuple(x.shape[-2:])}")
        return self.neck(self.image_encoder(x)["0"])

    def forward(self, images: Any, points: tuple[Any, Any] | None = None, boxes: Any = None,
                multimask_output: bool = True) -> tuple[Tensor, Tensor]:
        image = self.embed_image(images)
        sparse = self.prompt_encoder(points, boxes)
        n, c, h, w = image.shape
        dense = self.prompt_encoder.no_mask_embed.weight.reshape(1, c, 1, 1)
        pe = self.prompt_encoder.pe_layer.grid(h, w, image.dtype)
        masks, iou = self.mask_decoder(image, pe, sparse, dense, multimask_output)
        if masks.shape[-1] != self.image_size:
            masks = F.interpolate(masks, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        return masks, iou


def _sam_resnet(block: type, layers: list[int], image_size: int = 64, embed_dim: int = 64,
                stem_pool: bool = False, **kwargs: Any) -> PromptSegmenter:
    trunk = ResNet(block, layers)
    if not stem_pool:      # layer3 at stride 8: an 8x8 embedding of a 64x64 image, masks at 32x32
        trunk.maxpool = Identity()
    return PromptSegmenter(trunk, image_size, embed_dim, **kwargs)


sam_resnet18 = register_model(partial(_sam_resnet, BasicBlock, [2, 2, 2, 2]), "sam_resnet18")
