"""Hybrid ViT: convolutions make the tokens, a transformer relates them.

The ViT paper's own hybrid (Dosovitskiy et al. 2020, section 3.1) feeds the transformer with the
feature map of a ResNet stage instead of raw patches; Xiao et al. 2021 ("Early convolutions
help transformers see better") show that a handful of stride-2 3x3 convolutions in place of
the P x P patchify layer is enough: training becomes stable across learning rates and
optimizers, converges faster and ends more accurate, at the cost of about one transformer block.

Here the stem is Xiao et al.'s: ``len(stem_channels)`` blocks of conv 3x3 (stride given per
block, no bias) -> BatchNorm -> ReLU, then a 1x1 convolution to the embedding width. The
product of the strides plays the role of the patch size: (N, C, H, W) -> (N, H/S * W/S, D).
Everything after the embedding is ``VisionTransformer`` unchanged (class token, position
embedding, pre-norm blocks, head). Keys follow timm's ``HybridEmbed``:
``patch_embed.backbone.*`` (the convolutions) and ``patch_embed.proj`` (the 1x1).
"""
from __future__ import annotations

import math
from functools import partial
from typing import Any, Sequence

import tinyvision as tv
from tinyvision import nn
from tinyvision.models.registry import register_model
from tinyvision.models.vit import VisionTransformer


def conv_bn_relu(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """3x3 convolution (padding 1, no bias: BatchNorm has one) -> BatchNorm -> ReLU."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU())


class ConvStemEmbed(nn.Module):
    """(N, C, H, W) -> (N, H/S * W/S, D) with S = prod(stem_strides): conv blocks, then 1x1 to D."""

    def __init__(self, img_size: int, in_chans: int, embed_dim: int, stem_channels: Sequence[int],
                 stem_strides: Sequence[int]) -> None:
        super().__init__()
        if len(stem_channels) != len(stem_strides) or not stem_channels:
            raise ValueError(f"ConvStemEmbed: stem_channels {tuple(stem_channels)} and stem_strides "
                             f"{tuple(stem_strides)} must be non-empty and of one length")
        self.stride = math.prod(stem_strides)
        if img_size % self.stride:
            raise ValueError(f"ConvStemEmbed: img_size {img_size} is not a multiple of the stem's total stride "
                             f"{self.stride} (strides {tuple(stem_strides)})")
        self.img_size = img_size
        self.grid_size = img_size // self.stride
        self.num_patches = self.grid_size ** 2
        widths = [in_chans, *stem_channels]
        self.backbone = nn.Sequential(*[conv_bn_relu(widths[i], widths[i + 1], s) for i, s in enumerate(stem_strides)])
        self.proj = nn.Conv2d(widths[-1], embed_dim, kernel_size=1)

    def forward(self, x: tv.Tensor) -> tv.Tensor:
        if x.shape[-2:] != (self.img_size, self.img_size):
            raise ValueError(f"ConvStemEmbed: expected {self.img_size}x{self.img_size} images, got {x.shape}")
        return self.proj(self.backbone(x)).flatten(2).transpose(1, 2)  # row-major over the grid


class ResNetEmbed(nn.Module):
    """The ViT paper's hybrid: (N, C, H, W) -> (N, H/S * W/S, D) through the first ``stages``
    stages of a ResNet-18 (torchvision's keys under ``backbone``), then a 1x1 convolution to D.
    With ``cifar_stem`` (3x3 stride-1 stem, no max-pool) S = 2^(stages-1), else 4 * 2^(stages-1)."""

    def __init__(self, img_size: int, in_chans: int, embed_dim: int, stages: int = 2, cifar_stem: bool = True) -> None:
        super().__init__()
        from tinyvision.models.resnet import BasicBlock, ResNet

        if not 1 <= stages <= 4:
            raise ValueError(f"ResNetEmbed: stages must be 1..4, got {stages}")
        self.stride = 2 ** (stages - 1) * (1 if cifar_stem else 4)
        if img_size % self.stride:
            raise ValueError(f"ResNetEmbed: img_size {img_size} is not a multiple of the backbone's stride {self.stride}")
        self.img_size, self.grid_size = img_size, img_size // self.stride
        self.num_patches = self.grid_size ** 2
        self.backbone = ResNet(BasicBlock, [2, 2, 2, 2], cifar_stem=cifar_stem, in_channels=in_chans)
        for name in [f"layer{i}" for i in range(stages + 1, 5)] + ["avgpool", "fc"]:
            delattr(self.backbone, name)  # keep the stem and the first `stages` stages
        self.proj = nn.Conv2d(64 * 2 ** (stages - 1), embed_dim, kernel_size=1)

    def forward(self, x: tv.Tensor) -> tv.Tensor:
        if x.shape[-2:] != (self.img_size, self.img_size):
            raise ValueError(f"ResNetEmbed: expected {self.img_size}x{self.img_size} images, got {x.shape}")
        for layer in self.backbone.children():  # conv1, bn1, relu, maxpool, layer1, ...
            x = layer(x)
        return self.proj(x).flatten(2).transpose(1, 2)


class VisionTransformerHybrid(VisionTransformer):
    """A ViT whose patch embedding is a convolutional stem. Input (N, C, H, W) -> (N, num_classes).

    ``stem_channels`` / ``stem_strides``: one entry per 3x3 conv block; the tokens sit on a grid
    of img_size / prod(stem_strides). ``resnet_stages`` > 0 uses the first stages of a ResNet-18
    instead (``ResNetEmbed``; ``cifar_stem`` as in ResNet). Other keywords are VisionTransformer's.
    """

    def __init__(self, img_size: int = 224, in_chans: int = 3, embed_dim: int = 192,
                 stem_channels: Sequence[int] = (24, 48, 96, 192), stem_strides: Sequence[int] = (2, 2, 2, 2),
                 resnet_stages: int = 0, cifar_stem: bool = True, **kwargs: Any) -> None:
        if resnet_stages:
            stem: nn.Module = ResNetEmbed(img_size, in_chans, embed_dim, resnet_stages, cifar_stem)
        else:
            stem = ConvStemEmbed(img_size, in_chans, embed_dim, stem_channels, stem_strides)
        super().__init__(img_size=img_size, patch_size=stem.stride, in_chans=in_chans, embed_dim=embed_dim, **kwargs)
        self.patch_embed = stem  # replaces the patchify convolution, keeps its place in the state_dict


# Xiao et al.'s ViT_C for the tiny width: four stride-2 convs (16x16 "patches"), one block fewer
vit_tiny_convstem_224 = register_model(
    partial(VisionTransformerHybrid, embed_dim=192, depth=11, num_heads=3), "vit_tiny_convstem_224")
# for 32x32 (shapes, CIFAR): two stride-2 convs after a stride-1 one, tokens on an 8x8 grid; the
# narrow (nano) models start from Xavier weights (models/vit.py, init_linear_weights)
vit_nano_convstem_32 = register_model(
    partial(VisionTransformerHybrid, img_size=32, embed_dim=96, depth=4, num_heads=3, stem_channels=(32, 64, 96),
            stem_strides=(1, 2, 2), weight_init="xavier"), "vit_nano_convstem_32")
# the ViT paper's hybrid at 32x32: ResNet-18 (CIFAR stem) through layer2, tokens on a 16x16 grid
vit_nano_r18_32 = register_model(
    partial(VisionTransformerHybrid, img_size=32, embed_dim=128, depth=2, num_heads=4, resnet_stages=2,
            weight_init="xavier"),
    "vit_nano_r18_32")
