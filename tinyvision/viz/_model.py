"""What every viz function needs: one image as a batch in the model's dtype, run in eval mode."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np

import tinyvision as tv


def one_image(model: Any, image: Any, requires_grad: bool = False) -> tv.Tensor:
    """``image`` (C, H, W) or (1, C, H, W), array or Tensor -> a (1, C, H, W) leaf Tensor in the
    dtype of the model's parameters (float32 unless the model was cast)."""
    a = image.detach().numpy() if isinstance(image, tv.Tensor) else np.asarray(image)
    a = a[None] if a.ndim == 3 else a
    if a.ndim != 4 or a.shape[0] != 1:
        raise ValueError(f"image: expected one image (C, H, W) or (1, C, H, W), got shape {a.shape}")
    dtype = next((p.dtype for p in model.parameters()), np.dtype(np.float32))
    return tv.tensor(a.astype(dtype), requires_grad=requires_grad)


@contextmanager
def evaluating(model: Any) -> Iterator[Any]:
    """``with evaluating(model) as m:`` runs m in eval mode (BatchNorm running statistics, no
    dropout) and restores the caller's train/eval mode afterwards."""
    was_training = model.training
    try:
        yield model.eval()
    finally:
        model.train(was_training)
