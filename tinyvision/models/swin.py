"""Swin Transformer (Liu et al. 2021): attention inside local windows, shifted every other block.

A plain ViT lets every patch attend to every other: cost O((HW)^2) and no notion of "near".
Swin keeps attention local and builds a hierarchy, as a CNN does:

1. Patch embedding: a P x P stride-P convolution, then LayerNorm; tokens stay on their grid,
   channels last: (N, 3, H, W) -> (N, H/P, W/P, C).
2. Stages of blocks. Each block attends inside non-overlapping M x M windows
   (``window_partition``), with a learned bias per relative offset between two tokens
   (``relative_position_index`` into a (2M-1)^2 x heads table). Every second block first rolls
   the grid by M/2 (the cyclic shift), so windows straddle the previous block's borders and
   information crosses them; tokens that the roll brought together from opposite edges of the
   image must not attend to each other, which ``shifted_window_mask`` forbids.
3. Between stages, patch merging concatenates each 2 x 2 group of tokens (4C channels),
   normalises and projects to 2C: half the resolution, twice the width, as a CNN's stride-2 stage.
4. LayerNorm, average over the grid, a linear head.

Swin-T/S/B at 224 x 224: patches 4, windows 7, grids 56 -> 28 -> 14 -> 7. timm 1.0's keys
(``layers.N.downsample`` merges at the *start* of stages 1..3, ``head.fc``) and numerics
(LayerNorm eps 1e-5, shifted-pair scores -100, exact GELU, trunc_normal(0.02) init). Where a
stage's grid is no larger than the window, the window shrinks to the grid and the block does
not shift (timm does the same). Unlike timm, a grid that is not a multiple of the window, or
an odd grid before a merge, is refused with an error instead of silently padded.
"""
from __future__ import annotations

from functools import partial
from typing import Sequence

import numpy as np

import tinyvision as tv
import tinyvision.nn.functional as F
from tinyvision import nn
from tinyvision.models.registry import register_model
from tinyvision.models.vit import DropPath, Mlp, PatchEmbed, init_linear_weights


# ------------------------------------------------------------------------ the window machinery
def window_partition(x: tv.Tensor, window_size: int) -> tv.Tensor:
    """Cut a token grid into non-overlapping windows, each a short sequence.

    x (N, H, W, C) -> (N * H/M * W/M, M*M, C), windows in row-major order per image::

        +-----+-----+        window 0 = tokens of the top-left M x M square, row by row
        |  0  |  1  |        window 1 = the square to its right, ...
        +-----+-----+
        |  2  |  3  |
        +-----+-----+
    """
    n, h, w, c = x.shape
    m = window_size
    x = x.reshape(n, h // m, m, w // m, m, c)   # (N, rows of windows, M, cols of windows, M, C)
    x = x.permute(0, 1, 3, 2, 4, 5)             # (N, rows, cols, M, M, C)
    return x.reshape(n * (h // m) * (w // m), m * m, c)


def window_reverse(windows: tv.Tensor, window_size: int, height: int, width: int) -> tv.Tensor:
    """Undo ``window_partition``: (N * H/M * W/M, M*M, C) -> (N, H, W, C)."""
    m, c = window_size, windows.shape[-1]
    x = windows.reshape(-1, height // m, width // m, m, m, c)  # (N, rows, cols, M, M, C)
    x = x.permute(0, 1, 3, 2, 4, 5)                             # (N, rows, M, cols, M, C)
    return x.reshape(-1, height, width, c)


def relative_position_index(window_size: int) -> np.ndarray:
    """(M*M, M*M) int64: for tokens i, j of one window, the row of the bias table that holds
    the bias for their offset.

    The offset (dy, dx) = pos_i - pos_j has dy, dx in [-(M-1), M-1]: (2M-1)^2 possible offsets.
    Shift both to [0, 2M-2] and read them as one number in base 2M-1: (dy+M-1)(2M-1) + (dx+M-1).
    """
    m = window_size
    ys, xs = np.meshgrid(np.arange(m), np.arange(m), indexing="ij")
    coords = np.stack([ys.ravel(), xs.ravel()])          # (2, M*M), token t at (y_t, x_t)
    offsets = coords[:, :, None] - coords[:, None, :]    # (2, M*M, M*M): pos_i - pos_j
    dy, dx = offsets[0] + (m - 1), offsets[1] + (m - 1)
    return (dy * (2 * m - 1) + dx).astype(np.int64)


def shifted_window_mask(height: int, width: int, window_size: int, shift_size: int) -> np.ndarray:
    """(H/M * W/M, M*M, M*M) float: 0 where two tokens of a shifted window may attend to each
    other, -100 where the cyclic shift brought them together from opposite image edges.

    After rolling the grid up and left by s = shift_size, the last windows along each axis hold
    tokens from up to three regions of the *unrolled* image (labelled per axis below); two tokens
    may attend only when they came from the same region in both axes::

        rows [0, H-M) | [H-M, H-s) | [H-s, H)      (the same three bands along columns)
    """
    label = np.zeros((1, height, width, 1))
    bands_h = (slice(0, height - window_size), slice(height - window_size, height - shift_size),
               slice(height - shift_size, height))
    bands_w = (slice(0, width - window_size), slice(width - window_size, width - shift_size),
               slice(width - shift_size, width))
    for i, rows in enumerate(bands_h):
        for j, cols in enumerate(bands_w):
            label[:, rows, cols, :] = 3 * i + j
    windows = window_partition(tv.tensor(label), window_size).numpy()[..., 0]  # (windows, M*M)
    differ = windows[:, :, None] != windows[:, None, :]
    return np.where(differ, -100.0, 0.0)


# ------------------------------------------------------------------------------------ layers
class WindowAttention(nn.Module):
    """Multi-head self-attention inside each window, plus the learned relative position bias.

    x (N * windows, M*M, C) -> same shape. scores = q k^T / sqrt(d) + B[rel_index] (+ mask):
    the bias B is a ((2M-1)^2, heads) table, shared by every window, gathered through
    ``relative_position_index`` into (heads, M*M, M*M).
    """

    def __init__(self, dim: int, num_heads: int, window_size: int, qkv_bias: bool = True,
                 attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"WindowAttention: dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads, self.head_dim, self.window_size = num_heads, dim // num_heads, window_size
        self.relative_position_bias_table = nn.Parameter(tv.zeros((2 * window_size - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", tv.tensor(relative_position_index(window_size)),
                             persistent=False)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def relative_position_bias(self) -> tv.Tensor:
        """(heads, M*M, M*M): the table's rows picked by each token pair's offset."""
        area = self.window_size ** 2
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]  # (A*A, heads)
        return bias.reshape(area, area, self.num_heads).permute(2, 0, 1)

    def forward(self, x: tv.Tensor, mask: tv.Tensor | None = None) -> tv.Tensor:
        """x (N * nW, A, C), mask (nW, A, A) or None -> (N * nW, A, C), A = M*M."""
        bw, area, dim = x.shape
        # (N*nW, A, 3C) -> (3, N*nW, heads, A, d): rows [q; k; v], heads contiguous (as ViT)
        qkv = self.qkv(x).reshape(bw, area, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        bias = self.relative_position_bias()                       # (heads, A, A)
        if mask is not None:
            windows = mask.shape[0]
            bias = bias + mask.unsqueeze(1)                        # (nW, heads, A, A)
            # group the windows by image so the per-window mask broadcasts over the batch
            q, k, v = (t.reshape(bw // windows, windows, self.num_heads, area, self.head_dim) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias,
                                             dropout_p=self.attn_drop.p if self.training else 0.0)
        out = out.reshape(bw, self.num_heads, area, self.head_dim).transpose(1, 2).reshape(bw, area, dim)
        return self.proj_drop(self.proj(out))


class SwinTransformerBlock(nn.Module):
    """x + W-MSA(LN(x)) then x + MLP(LN(x)), on a (N, H, W, C) grid; ``shift_size`` > 0 rolls
    the grid by -s before the windows are cut and by +s after (SW-MSA)."""

    def __init__(self, dim: int, input_resolution: int, num_heads: int, window_size: int = 7,
                 shift_size: int = 0, mlp_ratio: float = 4.0, qkv_bias: bool = True, proj_drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float = 0.0) -> None:
        super().__init__()
        if input_resolution <= window_size:  # one window covers the grid: nothing to shift
            window_size, shift_size = input_resolution, 0
        if input_resolution % window_size:
            raise ValueError(f"SwinTransformerBlock: the {input_resolution}x{input_resolution} token grid is not a "
                             f"multiple of window_size {window_size}; choose img_size / patch_size / window_size "
                             "so that every stage's grid divides into whole windows")
        self.input_resolution, self.window_size, self.shift_size = input_resolution, window_size, shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads, window_size, qkv_bias, attn_drop, proj_drop)
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), proj_drop)
        self.drop_path2 = DropPath(drop_path)
        mask = shifted_window_mask(input_resolution, input_resolution, window_size, shift_size) if shift_size else None
        self.register_buffer("attn_mask", None if mask is None else tv.tensor(mask, dtype=np.float32),
                             persistent=False)

    def _attn(self, x: tv.Tensor) -> tv.Tensor:
        n, h, w, c = x.shape
        s = self.shift_size
        if s:
            x = tv.roll(x, shifts=(-s, -s), dims=(1, 2))  # cyclic shift: windows straddle old borders
        windows = window_partition(x, self.window_size)
        windows = self.attn(windows, mask=self.attn_mask)
        x = window_reverse(windows, self.window_size, h, w)
        if s:
            x = tv.roll(x, shifts=(s, s), dims=(1, 2))
        return x

    def forward(self, x: tv.Tensor) -> tv.Tensor:
        """(N, H, W, C) -> (N, H, W, C)."""
        if x.shape[1:3] != (self.input_resolution, self.input_resolution):
            raise ValueError(f"SwinTransformerBlock: expected a {self.input_resolution}x{self.input_resolution} "
                             f"grid (N, H, W, C), got {x.shape}")
        x = x + self.drop_path1(self._attn(self.norm1(x)))
        return x + self.drop_path2(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """Halve the grid, double the width: each 2 x 2 group of tokens becomes one.

    (N, H, W, C) -> (N, H/2, W/2, 4C) -> LayerNorm -> Linear(4C, 2C, no bias). The 4C channels
    are ordered as timm 1.0 orders them: (column offset, row offset, channel), i.e.
    [x(0,0), x(1,0), x(0,1), x(1,1)] for (row, col) offsets inside the 2 x 2 group.
    """

    def __init__(self, dim: int, out_dim: int | None = None) -> None:
        super().__init__()
        self.dim, self.out_dim = dim, out_dim or 2 * dim
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, self.out_dim, bias=False)

    def forward(self, x: tv.Tensor) -> tv.Tensor:
        n, h, w, c = x.shape
        if h % 2 or w % 2:
            raise ValueError(f"PatchMerging: the grid must have even height and width, got {x.shape} (N, H, W, C)")
        x = x.reshape(n, h // 2, 2, w // 2, 2, c)   # (N, H/2, row offset, W/2, col offset, C)
        x = x.permute(0, 1, 3, 4, 2, 5)              # (N, H/2, W/2, col offset, row offset, C)
        x = x.reshape(n, h // 2, w // 2, 4 * c)
        return self.reduction(self.norm(x))


class SwinTransformerStage(nn.Module):
    """[PatchMerging] then ``depth`` blocks alternating W-MSA and SW-MSA (shift = M/2)."""

    def __init__(self, dim: int, out_dim: int, input_resolution: int, depth: int, downsample: bool,
                 num_heads: int, window_size: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 proj_drop: float = 0.0, attn_drop: float = 0.0, drop_path: Sequence[float] = ()) -> None:
        super().__init__()
        if downsample and input_resolution % 2:
            raise ValueError(f"SwinTransformerStage: patch merging needs an even grid, got "
                             f"{input_resolution}x{input_resolution}")
        resolution = input_resolution // 2 if downsample else input_resolution
        self.downsample = PatchMerging(dim, out_dim) if downsample else nn.Identity()
        rates = list(drop_path) or [0.0] * depth
        self.blocks = nn.Sequential(*[
            SwinTransformerBlock(out_dim, resolution, num_heads, window_size,
                                 shift_size=0 if i % 2 == 0 else window_size // 2, mlp_ratio=mlp_ratio,
                                 qkv_bias=qkv_bias, proj_drop=proj_drop, attn_drop=attn_drop, drop_path=rates[i])
            for i in range(depth)])

    def forward(self, x: tv.Tensor) -> tv.Tensor:
        return self.blocks(self.downsample(x))


class SwinPatchEmbed(PatchEmbed):
    """ViT's patch embedding, then LayerNorm, kept on the grid: (N, C, H, W) -> (N, H/P, W/P, D)."""

    def __init__(self, img_size: int = 224, patch_size: int = 4, in_chans: int = 3, embed_dim: int = 96) -> None:
        super().__init__(img_size, patch_size, in_chans, embed_dim)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: tv.Tensor) -> tv.Tensor:
        if x.shape[-2:] != (self.img_size, self.img_size):
            raise ValueError(f"SwinPatchEmbed: expected {self.img_size}x{self.img_size} images, got {x.shape}")
        return self.norm(self.proj(x).permute(0, 2, 3, 1))  # channels last


class ClassifierHead(nn.Module):
    """Average over the grid, dropout, linear: (N, H, W, C) -> (N, num_classes) (timm's ``head.fc``)."""

    def __init__(self, in_features: int, num_classes: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: tv.Tensor) -> tv.Tensor:
        return self.fc(self.drop(x.mean(dim=(1, 2))))


# ------------------------------------------------------------------------------------ the net
class SwinTransformer(nn.Module):
    """Input (N, in_chans, img_size, img_size) -> logits (N, num_classes).

    Stage i has width embed_dim * 2^i, ``depths[i]`` blocks and ``num_heads[i]`` heads; its grid
    is img_size / patch_size / 2^i. ``drop_path_rate``: stochastic depth rising linearly from 0
    over all blocks to this rate (timm's default 0.1). ``weight_init``: '' (timm's) or 'xavier'
    (``tinyvision.models.vit.init_linear_weights``: better for narrow models).
    """

    def __init__(self, img_size: int = 224, patch_size: int = 4, in_chans: int = 3, num_classes: int = 1000,
                 embed_dim: int = 96, depths: Sequence[int] = (2, 2, 6, 2), num_heads: Sequence[int] = (3, 6, 12, 24),
                 window_size: int = 7, mlp_ratio: float = 4.0, qkv_bias: bool = True, drop_rate: float = 0.0,
                 proj_drop_rate: float = 0.0, attn_drop_rate: float = 0.0, drop_path_rate: float = 0.1,
                 weight_init: str = "") -> None:
        super().__init__()
        if len(depths) != len(num_heads):
            raise ValueError(f"SwinTransformer: depths {tuple(depths)} and num_heads {tuple(num_heads)} "
                             "must have one entry per stage")
        if img_size % patch_size:
            raise ValueError(f"SwinTransformer: img_size {img_size} is not a multiple of patch_size {patch_size}")
        self.num_classes = num_classes
        self.num_layers = len(depths)
        widths = [embed_dim * 2 ** i for i in range(self.num_layers)]
        self.num_features = widths[-1]
        self.patch_embed = SwinPatchEmbed(img_size, patch_size, in_chans, embed_dim)
        rates = np.linspace(0.0, drop_path_rate, sum(depths)).tolist()
        layers, resolution, start = [], img_size // patch_size, 0
        for i, depth in enumerate(depths):
            layers.append(SwinTransformerStage(
                widths[max(i - 1, 0)], widths[i], resolution, depth, downsample=i > 0, num_heads=num_heads[i],
                window_size=window_size, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, proj_drop=proj_drop_rate,
                attn_drop=attn_drop_rate, drop_path=rates[start:start + depth]))
            start += depth
            if i > 0:  # the stage began by merging 2 x 2 tokens
                resolution //= 2
        self.layers = nn.Sequential(*layers)
        self.norm = nn.LayerNorm(self.num_features)
        self.head = ClassifierHead(self.num_features, num_classes, drop_rate)
        init_linear_weights(self, weight_init)  # timm's trunc_normal(0.02), or 'xavier' for narrow models

    def forward_features(self, x: tv.Tensor) -> tv.Tensor:
        """(N, C, H, W) -> (N, H/(P 2^(S-1)), W/(P 2^(S-1)), num_features), after the final LayerNorm."""
        return self.norm(self.layers(self.patch_embed(x)))

    def forward(self, x: tv.Tensor) -> tv.Tensor:
        return self.head(self.forward_features(x))


swin_tiny_patch4_window7_224 = register_model(
    partial(SwinTransformer, patch_size=4, window_size=7, embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24)),
    "swin_tiny_patch4_window7_224")
swin_small_patch4_window7_224 = register_model(
    partial(SwinTransformer, patch_size=4, window_size=7, embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24)),
    "swin_small_patch4_window7_224")
swin_base_patch4_window7_224 = register_model(
    partial(SwinTransformer, patch_size=4, window_size=7, embed_dim=128, depths=(2, 2, 18, 2),
            num_heads=(4, 8, 16, 32)), "swin_base_patch4_window7_224")
# small configurations for 32 x 32 inputs (shapes, CIFAR): 2 x 2 patches on a 16 x 16 grid,
# windows of 4, two stages (16 -> 8), no stochastic depth, Xavier weights (narrow: init_linear_weights)
swin_nano_patch2_window4_32 = register_model(
    partial(SwinTransformer, img_size=32, patch_size=2, window_size=4, embed_dim=48, depths=(2, 4),
            num_heads=(3, 6), drop_path_rate=0.0, weight_init="xavier"), "swin_nano_patch2_window4_32")
