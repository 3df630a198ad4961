"""MultiScaleRoIAlign (Feature Pyramid Networks, Lin et al. 2017, eq. 1) with torchvision's
signature: each RoI is pooled from the one pyramid level that suits its size.

A RoI of width w and height h (image pixels) goes to level

    k = floor(k0 + log2(sqrt(w h) / 224) + 1e-6),  clamped to the levels present,

so an ImageNet-sized (224 px) RoI reads level k0 = 4 (stride 16), one half that size level 3,
and so on: small objects read fine maps, large ones coarse maps. Each level's scale is inferred
from its size against the (largest) image size: the nearest power of two.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from tinyvision import functional as F
from tinyvision.autograd.tensor import Tensor
from tinyvision.kernels.compat import array_module
from tinyvision.nn import Module
from tinyvision.ops.roi_align import roi_align


class LevelMapper:
    """Box areas -> pyramid level index (0 = the finest level given), FPN's equation 1."""

    def __init__(self, k_min: int, k_max: int, canonical_scale: int = 224, canonical_level: int = 4,
                 eps: float = 1e-6) -> None:
        self.k_min, self.k_max, self.s0, self.lvl0, self.eps = k_min, k_max, canonical_scale, canonical_level, eps

    def __call__(self, boxlists: Sequence[Any]) -> Any:
        boxes = [b.data if isinstance(b, Tensor) else b for b in boxlists]
        xp = array_module(boxes[0])
        b = xp.concatenate(boxes, axis=0)
        s = xp.sqrt((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))
        levels = xp.floor(self.lvl0 + xp.log2(s / self.s0) + b.dtype.type(self.eps))
        return xp.clip(levels, self.k_min, self.k_max).astype(np.int64) - self.k_min


def infer_scale(feature_size: Sequence[int], image_size: Sequence[int]) -> float:
    """The power of two nearest to feature size / image size (from the first axis, as torchvision)."""
    return float(2 ** float(np.round(np.log2(np.float32(feature_size[0] / image_size[0])))))


class MultiScaleRoIAlign(Module):
    """``forward(x, boxes, image_shapes)``: x an ordered dict of maps (those named in
    ``featmap_names`` are used, finest first), boxes a list of (L_i, 4) Tensors per image in
    image pixels, image_shapes the (H, W) of each image -> (sum L_i, C, *output_size)."""

    def __init__(self, featmap_names: list[str], output_size: Any, sampling_ratio: int, *,
                 canonical_scale: int = 224, canonical_level: int = 4) -> None:
        super().__init__()
        self.featmap_names = list(featmap_names)
        self.output_size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
        self.sampling_ratio = sampling_ratio
        self.canonical_scale, self.canonical_level = canonical_scale, canonical_level

    def forward(self, x: dict[str, Tensor], boxes: list[Tensor], image_shapes: list[tuple[int, int]]) -> Tensor:
        maps = [v for k, v in x.items() if k in self.featmap_names]
        if not image_shapes:
            raise ValueError("MultiScaleRoIAlign: image_shapes is empty")
        largest = (max(s[0] for s in image_shapes), max(s[1] for s in image_shapes))
        scales = [infer_scale(m.shape[-2:], largest) for m in maps]
        if len(maps) == 1:
            return roi_align(maps[0], list(boxes), self.output_size, scales[0], self.sampling_ratio)
        mapper = LevelMapper(int(-math.log2(scales[0])), int(-math.log2(scales[-1])), self.canonical_scale,
                             self.canonical_level)
        levels = mapper(boxes)
        xp = array_module(levels)
        ids = xp.concatenate([xp.full(len(b), i, dtype=np.int64) for i, b in enumerate(boxes)])
        rois = xp.concatenate([xp.asarray(b.data) for b in boxes], axis=0)
        rois = xp.concatenate([ids[:, None].astype(rois.dtype), rois], axis=1)
        pieces, order = [], []
        for level, (feature, scale) in enumerate(zip(maps, scales)):
            idx = xp.nonzero(levels == level)[0]
            if len(idx):
                pieces.append(roi_align(feature, Tensor(rois[idx]), self.output_size, scale, self.sampling_ratio))
                order.append(idx)
        if not pieces:  # no RoIs at all
            return Tensor(xp.zeros((0, maps[0].shape[1]) + self.output_size, dtype=maps[0].dtype))
        # every RoI was pooled once, level by level; put the rows back in the RoIs' order
        inverse = xp.argsort(xp.concatenate(order), kind="stable")
        return F.cat(pieces, dim=0)[inverse]
