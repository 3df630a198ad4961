"""Argument checks shared by the box ops: what a learner gets wrong gets a clear error."""
from __future__ import annotations

from typing import Any

import numpy as np

from tinyvision.autograd.tensor import Tensor
from tinyvision.kernels.compat import array_module


def check_tensor(op: str, name: str, value: Any) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{op}: {name} must be a Tensor, got {type(value).__name__}")
    return value


def check_boxes(op: str, name: str, boxes: Any, ordered: bool = True, ndim: int | None = None) -> Tensor:
    """``boxes`` must be a Tensor of shape (..., 4) (exactly ``ndim`` dims when given) with finite
    coordinates; with ``ordered``, ``x1 <= x2`` and ``y1 <= y2`` (the xyxy convention). Integer
    boxes are returned as float32, as torchvision upcasts them before dividing."""
    boxes = check_tensor(op, name, boxes)
    if boxes.ndim < 1 or boxes.shape[-1] != 4 or (ndim is not None and boxes.ndim != ndim):
        want = "(N, 4)" if ndim == 2 else "(..., 4)"
        raise ValueError(f"{op}: {name} must have shape {want}, got {tuple(boxes.shape)}")
    if boxes.dtype.kind in "iub":
        boxes = boxes.to(np.float32)
    elif boxes.dtype.kind != "f":
        raise TypeError(f"{op}: {name} must be a float or integer tensor, got dtype {boxes.dtype}")
    data = boxes.data
    xp = array_module(data)
    if data.size and not bool(xp.isfinite(data).all()):
        flat = data.reshape(-1, 4)
        bad = int(xp.argmax(~xp.isfinite(flat).all(axis=1)))
        raise ValueError(f"{op}: {name} has non-finite coordinates (NaN or inf), e.g. box {bad}: "
                         f"{flat[bad].tolist()}")
    if ordered and data.size:
        flat = data.reshape(-1, 4)
        wrong = (flat[:, 2] < flat[:, 0]) | (flat[:, 3] < flat[:, 1])
        if bool(wrong.any()):
            i = int(xp.argmax(wrong))
            raise ValueError(f"{op}: {name} must be (x1, y1, x2, y2) with x1 <= x2 and y1 <= y2, but box {i} "
                             f"is {flat[i].tolist()}")
    return boxes
