"""Anchors: the reference boxes a detector regresses from, torchvision's ``AnchorGenerator``.

Every position of a feature map of stride s (the image size over the map size) carries the same
set of "cell anchors", centred on the position's top-left pixel ``(x s, y s)``: for each size S
and aspect ratio r (height / width), a box of width ``S / sqrt(r)`` and height ``S sqrt(r)``,
its corners rounded to whole pixels. With FPN each level gets its own sizes (RetinaNet: 3 sizes
per octave, 32 to 512 px, on P3-P7; 3 ratios: 9 anchors per position).

The anchors of one image are listed level by level, position by position (row-major), anchor
by anchor: the order in which the heads lay out their predictions.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from tinyvision.autograd.tensor import Tensor
from tinyvision.kernels.compat import array_module
from tinyvision.nn import Module


class AnchorGenerator(Module):
    """``sizes``: one tuple of sizes per feature map (or a flat tuple: one size per map);
    ``aspect_ratios``: one tuple per map (or one tuple for all). ``forward(image_list,
    feature_maps)`` -> one (sum over maps of H W A, 4) Tensor of xyxy anchors per image."""

    def __init__(self, sizes: Sequence = ((128, 256, 512),), aspect_ratios: Sequence = ((0.5, 1.0, 2.0),)) -> None:
        super().__init__()
        if not isinstance(sizes[0], (list, tuple)):
            sizes = tuple((s,) for s in sizes)
        if not isinstance(aspect_ratios[0], (list, tuple)):
            aspect_ratios = (tuple(aspect_ratios),) * len(sizes)
        if len(sizes) != len(aspect_ratios):
            raise ValueError(f"AnchorGenerator: {len(sizes)} size tuples but {len(aspect_ratios)} aspect-ratio tuples")
        self.sizes, self.aspect_ratios = tuple(sizes), tuple(aspect_ratios)
        self.cell_anchors = [self.generate_anchors(s, a) for s, a in zip(self.sizes, self.aspect_ratios)]

    @staticmethod
    def generate_anchors(scales: Sequence[float], aspect_ratios: Sequence[float]) -> np.ndarray:
        """The (len(ratios) * len(scales), 4) cell anchors around (0, 0), ratio-major, rounded
        (half to even, computed in float32 as torchvision)."""
        scales = np.asarray(scales, dtype=np.float32)
        h_ratios = np.sqrt(np.asarray(aspect_ratios, dtype=np.float32))
        w_ratios = np.float32(1) / h_ratios
        ws = (w_ratios[:, None] * scales[None, :]).reshape(-1)
        hs = (h_ratios[:, None] * scales[None, :]).reshape(-1)
        return np.round(np.stack([-ws, -hs, ws, hs], axis=1) / np.float32(2))

    def num_anchors_per_location(self) -> list[int]:
        return [len(s) * len(a) for s, a in zip(self.sizes, self.aspect_ratios)]

    def grid_anchors(self, grid_sizes: list[tuple[int, int]], strides: list[tuple[int, int]], xp=np, dtype=np.float32):
        """Per feature map, the (H W A, 4) anchors: cell anchors shifted to every position."""
        if not len(grid_sizes) == len(strides) == len(self.cell_anchors):
            raise ValueError(f"AnchorGenerator: {len(grid_sizes)} feature maps but anchors for {len(self.cell_anchors)} "
                             "(give one sizes tuple per feature map)")
        out = []
        for (gh, gw), (sh, sw), base in zip(grid_sizes, strides, self.cell_anchors):
            shift_y, shift_x = np.meshgrid(np.arange(gh) * sh, np.arange(gw) * sw, indexing="ij")
            shifts = np.stack([shift_x.ravel(), shift_y.ravel(), shift_x.ravel(), shift_y.ravel()], axis=1)
            anchors = (shifts[:, None, :] + base.astype(dtype)[None, :, :]).reshape(-1, 4).astype(dtype)
            out.append(xp.asarray(anchors))
        return out

    def forward(self, image_list, feature_maps: list[Tensor]) -> list[Tensor]:
        H, W = image_list.tensors.shape[-2:]
        grid_sizes = [tuple(f.shape[-2:]) for f in feature_maps]
        strides = [(H // g[0], W // g[1]) for g in grid_sizes]
        xp = array_module(feature_maps[0].data)
        levels = self.grid_anchors(grid_sizes, strides, xp, feature_maps[0].dtype)
        anchors = xp.concatenate(levels, axis=0)
        return [Tensor(anchors) for _ in image_list.image_sizes]
