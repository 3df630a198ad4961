"""DeiT with a distillation token (Touvron et al. 2021): a ViT that learns from a teacher
through a token of its own.

The distilled ViT has two learned tokens in front of the patches: the class token, read by
``head`` and trained on the true labels, and the distillation token, read by ``head_dist`` and
trained on the teacher's predictions (hard: the teacher's arg-max; soft: its temperature-scaled
probabilities, see ``tinyvision.train.distill``). Both attend to the patches and to each other
in every block; they start different and stay different (the paper measures a cosine of
about 0.06 at the input, 0.93 at the output).

    tokens (N, 2 + num_patches, D) = [cls; dist; patches] + pos_embed     (timm's order)
    train mode: (head(cls), head_dist(dist)), one pair of logits per head
    eval mode:  (head(cls) + head_dist(dist)) / 2, the paper's late fusion

timm's keys: ``dist_token`` (1, 1, D) and ``head_dist``; ``pos_embed`` has two extra slots.
timm returns both heads in train mode only after ``set_distilled_training(True)``; here that is
the default (``distilled_training=True``), since a distilled model is trained to be distilled.
"""
from __future__ import annotations

from functools import partial
from typing import Any

import tinyvision as tv
from tinyvision import nn
from tinyvision.models.registry import register_model
from tinyvision.models.vit import VisionTransformer, init_linear_weights


class VisionTransformerDistilled(VisionTransformer):
    """ViT + distillation token + ``head_dist``. Input (N, C, H, W) -> logits (N, num_classes),
    or the pair ``(cls_logits, dist_logits)`` in train mode."""

    def __init__(self, *args: Any, distilled_training: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.num_prefix_tokens = 2
        self.distilled_training = distilled_training
        self.dist_token = nn.Parameter(tv.zeros(1, 1, self.embed_dim))
        self.pos_embed = nn.Parameter(tv.zeros(1, self.patch_embed.num_patches + 2, self.embed_dim))
        self.head_dist = nn.Linear(self.embed_dim, self.num_classes) if self.num_classes > 0 else nn.Identity()
        # timm's init: the new position embedding and the distillation token trunc_normal(0.02)
        for p in (self.pos_embed, self.dist_token):
            nn.init.trunc_normal_(p, std=0.02)
        init_linear_weights(self.head_dist, kwargs.get("weight_init", ""))

    def set_distilled_training(self, enable: bool = True) -> None:
        """timm's switch: train mode returns both heads (True) or their average (False)."""
        self.distilled_training = enable

    def _pos_embed(self, x: tv.Tensor) -> tv.Tensor:
        """(N, num_patches, D) -> (N, 2 + num_patches, D): [cls; dist; patches] + positions."""
        n = x.shape[0]
        tokens = tv.cat([self.cls_token.expand(n, -1, -1), self.dist_token.expand(n, -1, -1), x], dim=1)
        return self.pos_drop(tokens + self.pos_embed)

    def forward(self, x: tv.Tensor) -> tv.Tensor | tuple[tv.Tensor, tv.Tensor]:
        features = self.forward_features(x)
        logits, logits_dist = self.head(features[:, 0]), self.head_dist(features[:, 1])
        if self.training and self.distilled_training:
            return logits, logits_dist
        return (logits + logits_dist) / 2


deit_tiny_distilled_patch16_224 = register_model(
    partial(VisionTransformerDistilled, patch_size=16, embed_dim=192, depth=12, num_heads=3),
    "deit_tiny_distilled_patch16_224")
deit_small_distilled_patch16_224 = register_model(
    partial(VisionTransformerDistilled, patch_size=16, embed_dim=384, depth=12, num_heads=6),
    "deit_small_distilled_patch16_224")
