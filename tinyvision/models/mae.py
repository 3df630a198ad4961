"""Masked autoencoder (He et al. 2021): hide most patches, reconstruct their pixels.

1. Patchify and embed as a ViT does, add fixed 2-D sin-cos positions.
2. Random masking per sample: draw noise (N, L), sort it; the patches with the smallest
   noise are kept (``ids_keep``), the rest are hidden; ``ids_restore`` (the inverse
   permutation) puts tokens back in place later. With mask_ratio 0.75 the encoder sees a
   quarter of the patches, which is what makes MAE pre-training cheap.
3. The encoder (the ViT's blocks) runs on the class token and the visible patches only.
4. A light decoder: project to its own width, append one learned ``mask_token`` per hidden
   patch, unshuffle with ``ids_restore``, add its own fixed positions, a few blocks, then a
   linear layer predicts each patch's P*P*C pixels.
5. The loss is the MSE on the hidden patches only, against each patch's pixels normalised by
   their own mean and variance (``norm_pix_loss``: sharper reconstructions in the paper).

Keys follow the paper's code (``patch_embed``, ``cls_token``, ``pos_embed``, ``blocks``,
``norm``; ``decoder_embed``, ``mask_token``, ``decoder_pos_embed``, ``decoder_blocks``,
``decoder_norm``, ``decoder_pred``): the encoder's keys are a VisionTransformer's, so
``encoder_state_dict`` loads into ``create_model("vit_...")`` for fine-tuning.
"""
from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

import tinyvision as tv
from tinyvision import nn
from tinyvision.models.registry import register_model
from tinyvision.models.vit import Block, PatchEmbed


def sincos_pos_embed_2d(embed_dim: int, grid_size: int, cls_token: bool = True) -> np.ndarray:
    """(1 + grid^2 or grid^2, D) fixed positions: half the channels encode the row, half the
    column, each as [sin(p w_k), cos(p w_k)] with w_k = 10000^(-k / (D/4)), k < D/4 (as MAE)."""
    if embed_dim % 4:
        raise ValueError(f"sincos_pos_embed_2d: embed_dim {embed_dim} must be a multiple of 4")
    omega = 1.0 / 10000 ** (np.arange(embed_dim // 4, dtype=np.float64) / (embed_dim / 4))

    def one_axis(pos: np.ndarray) -> np.ndarray:       # (M,) -> (M, D/2)
        angles = np.outer(pos, omega)
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

    rows, cols = np.meshgrid(np.arange(grid_size, dtype=np.float64), np.arange(grid_size, dtype=np.float64),
                             indexing="ij")
    # MAE's code puts the column (w) half first
    emb = np.concatenate([one_axis(cols.ravel()), one_axis(rows.ravel())], axis=1)
    return np.concatenate([np.zeros((1, embed_dim)), emb]) if cls_token else emb


def patchify(imgs: tv.Tensor, patch_size: int) -> tv.Tensor:
    """(N, C, H, W) -> (N, L, P*P*C): each patch flattened row by row, channels last (MAE's order)."""
    n, c, h, w = imgs.shape
    p = patch_size
    x = imgs.reshape(n, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)  # (N, h, w, P, P, C)
    return x.reshape(n, (h // p) * (w // p), p * p * c)


def unpatchify(x: tv.Tensor, patch_size: int, channels: int) -> tv.Tensor:
    """(N, L, P*P*C) -> (N, C, H, W), the inverse of ``patchify`` (a square grid)."""
    n, length, _ = x.shape
    g, p = int(round(length ** 0.5)), patch_size
    x = x.reshape(n, g, g, p, p, channels).permute(0, 5, 1, 3, 2, 4)  # (N, C, h, P, w, P)
    return x.reshape(n, channels, g * p, g * p)


def random_masking(x: tv.Tensor, mask_ratio: float, noise: tv.Tensor | None = None
                   ) -> tuple[tv.Tensor, tv.Tensor, tv.Tensor]:
    """Keep a random (1 - mask_ratio) share of each sample's tokens.

    x (N, L, D) -> (x_kept (N, K, D), mask (N, L) with 1 = hidden, ids_restore (N, L)), where
    K = int(L * (1 - mask_ratio)). ``noise`` (N, L) in [0, 1) decides (drawn from
    ``tinyvision.random`` if not given): the K tokens with the smallest noise are kept.
    """
    if not 0.0 < mask_ratio < 1.0:
        raise ValueError(f"random_masking: mask_ratio must be in (0, 1), got {mask_ratio}")
    n, length, dim = x.shape
    keep = int(length * (1 - mask_ratio))
    if keep < 1:
        raise ValueError(f"random_masking: mask_ratio {mask_ratio} keeps no token of {length}")
    if noise is None:
        noise = tv.rand(n, length, device=x.device)
    ids_shuffle = tv.argsort(noise, dim=1)          # ascending: small noise is kept
    ids_restore = tv.argsort(ids_shuffle, dim=1)    # the inverse permutation
    ids_keep = ids_shuffle[:, :keep]
    x_kept = tv.gather(x, 1, ids_keep.unsqueeze(-1).expand(n, keep, dim))
    mask = np.ones((n, length), dtype=x.dtype)
    mask[:, :keep] = 0                               # in shuffled order: the first K are kept...
    mask = tv.gather(tv.tensor(mask, device=x.device), 1, ids_restore)  # ...back in image order
    return x_kept, mask, ids_restore


class MaskedAutoencoderViT(nn.Module):
    """``forward(imgs) -> (loss, pred (N, L, P*P*C), mask (N, L))``; ``forward_features`` encodes all
    patches (no masking) for probing."""

    def __init__(self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 1024,
                 depth: int = 24, num_heads: int = 16, decoder_embed_dim: int = 512, decoder_depth: int = 8,
                 decoder_num_heads: int = 16, mlp_ratio: float = 4.0, norm_pix_loss: bool = True,
                 mask_ratio: float = 0.75) -> None:
        super().__init__()
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"MaskedAutoencoderViT: mask_ratio must be in (0, 1), got {mask_ratio}")
        self.patch_size, self.in_chans, self.embed_dim = patch_size, in_chans, embed_dim
        self.norm_pix_loss, self.mask_ratio = norm_pix_loss, mask_ratio
        # encoder: a ViT's parts under a ViT's keys
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        grid = self.patch_embed.grid_size
        self.cls_token = nn.Parameter(tv.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(tv.tensor(sincos_pos_embed_2d(embed_dim, grid)[None], dtype=np.float32),
                                      requires_grad=False)  # fixed
        self.blocks = nn.Sequential(*[Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        # decoder
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim)
        self.mask_token = nn.Parameter(tv.zeros(1, 1, decoder_embed_dim))
        self.decoder_pos_embed = nn.Parameter(
            tv.tensor(sincos_pos_embed_2d(decoder_embed_dim, grid)[None], dtype=np.float32), requires_grad=False)
        self.decoder_blocks = nn.Sequential(*[Block(decoder_embed_dim, decoder_num_heads, mlp_ratio)
                                              for _ in range(decoder_depth)])
        self.decoder_norm = nn.LayerNorm(decoder_embed_dim, eps=1e-6)
        self.decoder_pred = nn.Linear(decoder_embed_dim, patch_size ** 2 * in_chans)
        # MAE's init: tokens N(0, 0.02), Linear weights Xavier-uniform, patch projection as a Linear
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        w = self.patch_embed.proj.weight  # Xavier for the (D, C*P*P) matrix the convolution is
        bound = (6.0 / (w.shape[0] + int(np.prod(w.shape[1:])))) ** 0.5
        nn.init.uniform_(w, -bound, bound)

    def forward_encoder(self, imgs: tv.Tensor, mask_ratio: float, noise: tv.Tensor | None = None
                        ) -> tuple[tv.Tensor, tv.Tensor, tv.Tensor]:
        """(N, C, H, W) -> (latent (N, 1 + K, D), mask (N, L), ids_restore (N, L))."""
        x = self.patch_embed(imgs) + self.pos_embed[:, 1:]
        x, mask, ids_restore = random_masking(x, mask_ratio, noise)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
        x = tv.cat([cls, x], dim=1)
        return self.norm(self.blocks(x)), mask, ids_restore

    def forward_decoder(self, latent: tv.Tensor, ids_restore: tv.Tensor) -> tv.Tensor:
        """(N, 1 + K, D) -> (N, L, P*P*C): mask tokens fill the hidden places, in image order."""
        x = self.decoder_embed(latent)
        n, kept, dim = x.shape[0], x.shape[1] - 1, x.shape[2]
        length = ids_restore.shape[1]
        mask_tokens = self.mask_token.expand(n, length - kept, dim)
        x_ = tv.cat([x[:, 1:], mask_tokens], dim=1)                                 # shuffled order
        x_ = tv.gather(x_, 1, ids_restore.unsqueeze(-1).expand(n, length, dim))     # image order
        x = tv.cat([x[:, :1], x_], dim=1) + self.decoder_pos_embed
        x = self.decoder_norm(self.decoder_blocks(x))
        return self.decoder_pred(x)[:, 1:]                                          # drop the class token

    def forward_loss(self, imgs: tv.Tensor, pred: tv.Tensor, mask: tv.Tensor) -> tv.Tensor:
        """Mean over hidden patches of the per-patch MSE (targets normalised per patch if asked)."""
        target = patchify(imgs, self.patch_size)
        if self.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)  # unbiased, as the paper's code (torch's default)
            target = (target - mean) / (var + 1e-6) ** 0.5
        per_patch = ((pred - target) ** 2).mean(dim=-1)  # (N, L)
        return (per_patch * mask).sum() / mask.sum()

    def forward(self, imgs: tv.Tensor, mask_ratio: float | None = None, noise: tv.Tensor | None = None
                ) -> tuple[tv.Tensor, tv.Tensor, tv.Tensor]:
        latent, mask, ids_restore = self.forward_encoder(imgs, self.mask_ratio if mask_ratio is None else mask_ratio,
                                                         noise)
        pred = self.forward_decoder(latent, ids_restore)
        return self.forward_loss(imgs, pred, mask), pred, mask

    def forward_features(self, imgs: tv.Tensor) -> tv.Tensor:
        """All patches, no masking: (N, C, H, W) -> (N, 1 + L, D) (the class token first)."""
        x = self.patch_embed(imgs) + self.pos_embed[:, 1:]
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
        return self.norm(self.blocks(tv.cat([cls, x], dim=1)))

    def encoder_state_dict(self) -> dict[str, Any]:
        """The encoder's weights under VisionTransformer's keys (for ``load_state_dict(strict=False)``)."""
        prefixes = ("patch_embed.", "cls_token", "pos_embed", "blocks.", "norm.")
        return {k: v for k, v in self.state_dict().items() if k.startswith(prefixes)}


mae_vit_base_patch16 = register_model(
    partial(MaskedAutoencoderViT, patch_size=16, embed_dim=768, depth=12, num_heads=12, decoder_embed_dim=512,
            decoder_depth=8, decoder_num_heads=16), "mae_vit_base_patch16")
# for 32 x 32 (shapes): 4 x 4 patches, a ViT-Tiny-width encoder of 4 blocks, a 2-block decoder
mae_vit_nano_patch4_32 = register_model(
    partial(MaskedAutoencoderViT, img_size=32, patch_size=4, embed_dim=96, depth=4, num_heads=3,
            decoder_embed_dim=64, decoder_depth=2, decoder_num_heads=4), "mae_vit_nano_patch4_32")
