"""The sine position encoding of a feature map (DETR, Carion et al. 2020, after Vaswani et al. 2017).

A transformer sees the H x W feature map as a set of H*W tokens; without a position signal
it could not tell where a token came from, and DETR's boxes are positions. Each pixel (y, x)
gets a fixed vector of ``2 * num_pos_feats`` numbers: half for y, half for x,

    pos_y[2i]   = sin(y / T^(2i/d)),   pos_y[2i+1] = cos(y / T^(2i/d)),    d = num_pos_feats,
    (likewise x), and the vector is [pos_y, pos_x] (y first, as the reference implementation),

with T = ``temperature`` (10000). With ``normalize=True`` (DETR's setting) y and x are the
running counts of valid (unpadded) pixels scaled to (0, ``scale``] = (0, 2 pi]:
y = cumsum / (last cumsum + 1e-6) * scale, so the encoding describes the *relative* position in
the image whatever its size, and the slowest frequency spans about one period over the image.

A padding ``mask`` (N, H, W), True = padded, is optional; the shapes images are all of one size,
so tinyvision passes None (every pixel valid). The encoding has no parameters and no gradient.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinyvision.autograd.tensor import Tensor
from tinyvision.kernels.compat import array_module
from tinyvision.nn import Module


class PositionEmbeddingSine(Module):
    """``forward(x, mask=None)`` -> (N, 2 * num_pos_feats, H, W) for a feature map x (N, C, H, W)."""

    def __init__(self, num_pos_feats: int = 64, temperature: float = 10000, normalize: bool = False,
                 scale: float | None = None) -> None:
        super().__init__()
        if scale is not None and not normalize:
            raise ValueError("PositionEmbeddingSine: normalize should be True if scale is passed")
        if num_pos_feats <= 0 or num_pos_feats % 2:
            raise ValueError(f"PositionEmbeddingSine: num_pos_feats must be a positive even number, got {num_pos_feats}")
        self.num_pos_feats, self.temperature, self.normalize = num_pos_feats, temperature, normalize
        self.scale = 2 * math.pi if scale is None else scale

    def forward(self, x: Tensor, mask: Any = None) -> Tensor:
        if x.ndim != 4:
            raise ValueError(f"PositionEmbeddingSine: x must be (N, C, H, W), got shape {tuple(x.shape)}")
        n, _, h, w = x.shape
        data = x.data
        xp = array_module(data)
        if mask is None:
            not_mask = xp.ones((n, h, w), dtype=data.dtype)
        else:
            mask = mask.data if isinstance(mask, Tensor) else mask
            if tuple(mask.shape) != (n, h, w):
                raise ValueError(f"PositionEmbeddingSine: mask must be (N, H, W) = {(n, h, w)}, got {tuple(mask.shape)}")
            not_mask = (~xp.asarray(mask, dtype=bool)).astype(data.dtype)
        y_embed = xp.cumsum(not_mask, axis=1)            # 1, 2, ..., H down each column
        x_embed = xp.cumsum(not_mask, axis=2)            # 1, 2, ..., W along each row
        if self.normalize:
            eps = 1e-6
            y_embed = y_embed / (y_embed[:, -1:, :] + eps) * self.scale
            x_embed = x_embed / (x_embed[:, :, -1:] + eps) * self.scale
        d = self.num_pos_feats
        dim_t = self.temperature ** (2 * (np.arange(d) // 2) / d)   # each frequency twice: sin, cos
        dim_t = xp.asarray(dim_t, dtype=data.dtype)
        return Tensor(xp.concatenate([self._interleave(y_embed, dim_t, xp), self._interleave(x_embed, dim_t, xp)],
                                     axis=3).transpose(0, 3, 1, 2))

    @staticmethod
    def _interleave(coord: Any, dim_t: Any, xp: Any) -> Any:
        """(N, H, W) -> (N, H, W, d): sin of the even channels, cos of the odd, paired as
        [sin f0, cos f0, sin f1, cos f1, ...] (the reference's stack-then-flatten order)."""
        phase = coord[..., None] / dim_t
        return xp.stack([xp.sin(phase[..., 0::2]), xp.cos(phase[..., 1::2])], axis=4).reshape(phase.shape)

    def extra_repr(self) -> str:
        return f"num_pos_feats={self.num_pos_feats}, temperature={self.temperature}, normalize={self.normalize}"
