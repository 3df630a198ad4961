"""RoI arguments as torchvision takes them: a (K, 5) tensor of ``(batch_index, x1, y1, x2, y2)``
rows, or a list with one (L, 4) tensor of boxes per image."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from tinyvision import functional as F
from tinyvision.autograd.tensor import Tensor
from tinyvision.creation import full_like
from tinyvision.kernels.compat import array_module
from tinyvision.ops._checks import check_boxes


def convert_boxes_to_roi_format(boxes: Sequence[Tensor]) -> Tensor:
    """[(L_0, 4), (L_1, 4), ...] per image -> (sum L_i, 5) rows (i, x1, y1, x2, y2)."""
    ids = [full_like(b[:, :1], i) for i, b in enumerate(boxes)]
    return F.cat([F.cat(ids, dim=0), F.cat(list(boxes), dim=0)], dim=1)


def roi_array(op: str, input: Tensor, boxes: Any) -> Any:
    """The RoIs as one checked (K, 5) array in the input's dtype and on its device.

    Checks what would make a kernel read outside the input: a batch index that is not an
    integer in [0, N), non-finite coordinates, and boxes with x2 < x1 or y2 < y1.
    """
    if not isinstance(input, Tensor) or input.ndim != 4:
        shape = tuple(input.shape) if isinstance(input, Tensor) else type(input).__name__
        raise ValueError(f"{op}: input must be a (N, C, H, W) Tensor, got {shape}")
    if input.dtype.kind != "f":
        raise TypeError(f"{op}: input must be a floating-point tensor, got dtype {input.dtype}")
    if isinstance(boxes, (list, tuple)):
        for i, b in enumerate(boxes):
            check_boxes(op, f"boxes[{i}]", b, ndim=2)
        xp = array_module(input.data)
        parts = [xp.concatenate([xp.full((b.shape[0], 1), i, dtype=input.dtype),
                                 xp.asarray(b.data, dtype=input.dtype)], axis=1) for i, b in enumerate(boxes)]
        rois = xp.concatenate(parts, axis=0) if parts else xp.zeros((0, 5), dtype=input.dtype)
    elif isinstance(boxes, Tensor):
        if boxes.ndim != 2 or boxes.shape[1] != 5:
            raise ValueError(f"{op}: boxes must be a (K, 5) Tensor of (batch_index, x1, y1, x2, y2) rows or a "
                             f"list of (L, 4) Tensors, got shape {tuple(boxes.shape)}")
        check_boxes(op, "boxes[:, 1:]", boxes[:, 1:], ndim=2)
        if boxes.device != input.device:
            raise ValueError(f"{op}: boxes are on {boxes.device} but input on {input.device}")
        rois = array_module(input.data).asarray(boxes.data, dtype=input.dtype)
    else:
        raise TypeError(f"{op}: boxes must be a (K, 5) Tensor or a list of (L, 4) Tensors, got "
                        f"{type(boxes).__name__}")
    index = rois[:, 0]
    bad = (index < 0) | (index >= input.shape[0]) | (index != array_module(index).floor(index))
    if bool(bad.any()):
        i = int(array_module(bad).argmax(bad))
        raise ValueError(f"{op}: RoI {i} has batch index {float(index[i])}, but input holds {input.shape[0]} "
                         f"images (valid: integers 0 .. {input.shape[0] - 1})")
    return rois


def output_pair(op: str, output_size: Any) -> tuple[int, int]:
    size = (output_size, output_size) if isinstance(output_size, (int, np.integer)) else tuple(output_size)
    if len(size) != 2 or not all(isinstance(v, (int, np.integer)) and v >= 1 for v in size):
        raise ValueError(f"{op}: output_size must be a positive int or a pair of them, got {output_size!r}")
    return int(size[0]), int(size[1])
