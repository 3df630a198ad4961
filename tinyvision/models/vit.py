"""Vision Transformer (Dosovitskiy et al. 2020): an image is a sequence of patches.

1. Cut the image into P x P patches and embed each linearly: one Conv2d with kernel = stride
   = P does both. (N, 3, H, W) -> (N, H/P * W/P, D).
2. Prepend a learned class token and add a learned 1-D position embedding (which has a slot
   for the class token too: timm's "concatenate, then add").
3. A stack of pre-norm encoder blocks: x + Attention(LN(x)), then x + MLP(LN(x)).
4. LayerNorm, take the class token, a linear head.

timm's keys and numerics: LayerNorm eps 1e-6, exact (erf) GELU, qkv with bias, [q; k; v]
rows with the heads contiguous inside each, timm's init (trunc_normal 0.02 for Linear
weights and the position embedding, normal 1e-6 for the class token).
"""
from __future__ import annotations

from functools import partial

import tinyvision as tv
import tinyvision.nn.functional as F
from tinyvision import nn
from tinyvision.models.registry import register_model


class PatchEmbed(nn.Module):
    """(N, C, H, W) -> (N, num_patches, D): a P x P stride-P convolution, then flatten."""

    def __init__(self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768) -> None:
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"PatchEmbed: img_size {img_size} is not a multiple of patch_size {patch_size}")
        self.img_size, self.patch_size = img_size, patch_size
        self.grid_size = img_size // patch_size
        self.num_patches = self.grid_size ** 2
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: tv.Tensor) -> tv.Tensor:
        if x.shape[-2:] != (self.img_size, self.img_size):
            raise ValueError(f"PatchEmbed: expected {self.img_size}x{self.img_size} images, got {x.shape}")
        return self.proj(x).flatten(2).transpose(1, 2)  # row-major over the patch grid


class Attention(nn.Module):
    """Multi-head self-attention: softmax(q k^T / sqrt(d)) v per head.

    ``fused=True`` calls ``F.scaled_dot_product_attention`` (the fast kernel). With
    ``fused=False`` the steps are spelled out, and the attention matrix passes through
    ``self.attn_map`` (an Identity), where a forward hook can read it (see tinyvision.viz).
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0, fused: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"Attention: dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.fused = fused
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.attn_map = nn.Identity()
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: tv.Tensor) -> tv.Tensor:
        n, length, dim = x.shape
        # (N, L, 3D) -> (3, N, heads, L, head_dim): rows are [q; k; v], heads contiguous
        qkv = self.qkv(x).reshape(n, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        if self.fused:
            x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop.p if self.training else 0.0)
        else:
            attn = self.attn_map(F.softmax((q * self.scale) @ k.transpose(-2, -1), dim=-1))
            x = self.attn_drop(attn) @ v
        x = x.transpose(1, 2).reshape(n, length, dim)  # merge the heads
        return self.proj_drop(self.proj(x))


def drop_path(x: tv.Tensor, p: float = 0.0, training: bool = False) -> tv.Tensor:
    """Stochastic depth (Huang et al. 2016): drop a residual branch for whole samples.

    x (N, ...) -> x * m_n / (1 - p), with m_n ~ Bernoulli(1 - p) drawn once per sample n
    (from ``tinyvision.random``), so the branch's expected value is unchanged; identity in
    eval mode or with p = 0. The gradient is the same per-sample mask times 1 / (1 - p).
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"drop_path: p must be in [0, 1), got {p}")
    if p == 0.0 or not training:
        return x
    from tinyvision.random import rand_array

    keep = rand_array((x.shape[0],) + (1,) * (x.ndim - 1), x.device) >= p
    return x * tv.tensor(keep.astype(x.dtype) / x.dtype.type(1.0 - p), device=x.device)


class DropPath(nn.Module):
    """``drop_path`` as a layer (timm's name); no parameters, so no state_dict keys."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"DropPath: drop_prob must be in [0, 1), got {drop_prob}")
        self.drop_prob = drop_prob

    def forward(self, x: tv.Tensor) -> tv.Tensor:
        return drop_path(x, self.drop_prob, self.training)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


class Mlp(nn.Module):
    """Linear(D, hidden) -> GELU (exact) -> Linear(hidden, D), with dropout after each."""

    def __init__(self, in_features: int, hidden_features: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x: tv.Tensor) -> tv.Tensor:
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


class Block(nn.Module):
    """Pre-norm transformer encoder block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop: float = 0.0, attn_drop: float = 0.0, fused_attn: bool = True, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias, attn_drop, drop, fused=fused_attn)
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.drop_path2 = DropPath(drop_path)

    def forward(self, x: tv.Tensor) -> tv.Tensor:
        x = x + self.drop_path1(self.attn(self.norm1(x)))
        return x + self.drop_path2(self.mlp(self.norm2(x)))


WEIGHT_INITS = ("", "xavier")


def init_linear_weights(model: nn.Module, weight_init: str = "") -> None:
    """Every Linear of ``model``: '' = timm's default, trunc_normal(std 0.02); 'xavier' =
    Xavier-uniform, U(+-sqrt(6 / (fan_in + fan_out))) (the original ViT's JAX code and MAE's).
    Biases 0 in both.

    Why two: std 0.02 is about 1/sqrt(2500), i.e. fan-in scaled for widths of a few thousand
    (ViT-B's MLP, 3072). At widths of 48-192 it makes every residual branch start near zero
    (0.02 * sqrt(96) ~ 0.2 per layer, squared across a branch's two layers), so a small model
    begins as "patch embedding -> pooling -> head" and spends hundreds of steps at chance
    before the branches grow; Xavier's scale follows the width (docs/training.md measures it).
    """
    if weight_init not in WEIGHT_INITS:
        raise ValueError(f"weight_init must be one of {WEIGHT_INITS}, got {weight_init!r}")
    for m in model.modules():
        if isinstance(m, nn.Linear):
            if weight_init == "xavier":
                nn.init.xavier_uniform_(m.weight)
            else:
                nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class VisionTransformer(nn.Module):
    """Input (N, in_chans, img_size, img_size) -> logits (N, num_classes)."""

    def __init__(self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3, num_classes: int = 1000,
                 embed_dim: int = 768, depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 fused_attn: bool = True, drop_path_rate: float = 0.0, weight_init: str = "") -> None:
        super().__init__()
        self.num_classes = num_classes
        self.embed_dim = embed_dim
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(tv.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(tv.zeros(1, self.patch_embed.num_patches + 1, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]  # stochastic depth 0 -> rate
        self.blocks = nn.Sequential(*[Block(embed_dim, num_heads, mlp_ratio, qkv_bias, drop_rate,
                                            attn_drop_rate, fused_attn, rates[i]) for i in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()

        # timm's default init ('xavier': see init_linear_weights)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        init_linear_weights(self, weight_init)

    def forward_features(self, x: tv.Tensor) -> tv.Tensor:
        """(N, C, H, W) -> (N, 1 + num_patches, D), after the final LayerNorm."""
        return self.norm(self.blocks(self._pos_embed(self.patch_embed(x))))

    def _pos_embed(self, x: tv.Tensor) -> tv.Tensor:
        """(N, num_patches, D) -> (N, 1 + num_patches, D): prepend the class token, add positions."""
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        return self.pos_drop(tv.cat([cls, x], dim=1) + self.pos_embed)

    def forward(self, x: tv.Tensor) -> tv.Tensor:
        return self.head(self.forward_features(x)[:, 0])  # classify from the class token


vit_tiny_patch16_224 = register_model(
    partial(VisionTransformer, patch_size=16, embed_dim=192, depth=12, num_heads=3), "vit_tiny_patch16_224")
vit_small_patch16_224 = register_model(
    partial(VisionTransformer, patch_size=16, embed_dim=384, depth=12, num_heads=6), "vit_small_patch16_224")
vit_base_patch16_224 = register_model(
    partial(VisionTransformer, patch_size=16, embed_dim=768, depth=12, num_heads=12), "vit_base_patch16_224")
