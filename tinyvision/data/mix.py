"""Batch-level mixing: MixUp (Zhang et al., 2018) and CutMix (Yun et al., 2019).

Both pair each image with the next one in the batch (``roll`` by 1, as torchvision v2 does),
mix the pair, and mix their one-hot labels by the same proportion, so the targets become
class probabilities; train on them with ``soft_target_cross_entropy``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tinyvision.autograd.tensor import Tensor
from tinyvision.functional.loss import cross_entropy
from tinyvision.kernels.compat import array_module
from tinyvision.random import generator


class _Mix:
    def __init__(self, alpha: float = 1.0, num_classes: int | None = None) -> None:
        if alpha <= 0:
            raise ValueError(f"{type(self).__name__}: alpha must be positive, got {alpha}")
        self.alpha, self.num_classes = float(alpha), num_classes

    def _inputs(self, images: Any, labels: Any) -> tuple[Any, Any, Any]:
        """Raw arrays: images (N, C, H, W) float, labels (N,) ints -> one-hot (N, K) of images' dtype."""
        x = images.data if isinstance(images, Tensor) else images
        y = labels.data if isinstance(labels, Tensor) else labels
        name = type(self).__name__
        if x.ndim != 4 or x.dtype.kind != "f":
            raise ValueError(f"{name}: images must be a float (N, C, H, W) batch, got shape {x.shape}, dtype {x.dtype}")
        if y.ndim != 1 or y.shape[0] != x.shape[0] or y.dtype.kind not in "iu":
            raise ValueError(f"{name}: labels must be (N,) integer class indices with N = {x.shape[0]}, "
                             f"got shape {y.shape}, dtype {y.dtype}")
        xp = array_module(x)
        k = self.num_classes if self.num_classes is not None else int(y.max()) + 1
        if int(y.min()) < 0 or int(y.max()) >= k:
            raise ValueError(f"{name}: labels must lie in [0, {k}), got [{int(y.min())}, {int(y.max())}]")
        return xp, x, xp.eye(k, dtype=x.dtype)[y]

    def _lam(self) -> float:
        """lambda ~ Beta(alpha, alpha): the share of each image that stays its own."""
        return float(generator().beta(self.alpha, self.alpha))


class MixUp(_Mix):
    """x = lam * x + (1 - lam) * x_rolled, y = lam * y + (1 - lam) * y_rolled.

    ``__call__(images (N, C, H, W), labels (N,))`` -> (images, soft targets (N, num_classes)).
    ``num_classes`` defaults to max(label) + 1 of the batch; pass it so every batch agrees.
    """

    def __call__(self, images: Any, labels: Any) -> tuple[Tensor, Tensor]:
        xp, x, y = self._inputs(images, labels)
        lam = self._lam()
        self.last_lam = lam
        mixed = lam * x + (1 - lam) * xp.roll(x, 1, axis=0)
        return Tensor(mixed.astype(x.dtype)), Tensor(lam * y + (1 - lam) * xp.roll(y, 1, axis=0))


class CutMix(_Mix):
    """Paste a box of the rolled image into each image; mix the labels by area.

    The box has centre (r_x, r_y) uniform over the image and half-size sqrt(1 - lam) / 2 times
    (W, H), clipped at the border; lam is then recomputed as 1 - box area / image area, so the
    label weights equal the pixel shares exactly. ``last_box`` holds (x0, y0, x1, y1).
    """

    def __call__(self, images: Any, labels: Any) -> tuple[Tensor, Tensor]:
        xp, x, y = self._inputs(images, labels)
        h, w = x.shape[-2:]
        lam = self._lam()
        r_x, r_y = int(generator().integers(w)), int(generator().integers(h))
        r = 0.5 * np.sqrt(1.0 - lam)
        half_w, half_h = int(r * w), int(r * h)
        x0, y0 = max(r_x - half_w, 0), max(r_y - half_h, 0)
        x1, y1 = min(r_x + half_w, w), min(r_y + half_h, h)
        mixed = x.copy()
        mixed[..., y0:y1, x0:x1] = xp.roll(x, 1, axis=0)[..., y0:y1, x0:x1]
        lam = 1.0 - (x1 - x0) * (y1 - y0) / (w * h)
        self.last_lam, self.last_box = lam, (x0, y0, x1, y1)
        return Tensor(mixed), Tensor(lam * y + (1 - lam) * xp.roll(y, 1, axis=0))


def soft_target_cross_entropy(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """mean_n sum_c -target[n, c] log softmax(input)[n, c], for MixUp/CutMix targets.

    input: logits (N, C); target: probabilities (N, C), float. The gradient w.r.t. the
    logits is (softmax(input) - target) / N.
    """
    if target.shape != input.shape or target.dtype.kind != "f":
        raise ValueError(f"soft_target_cross_entropy: target must be float probabilities of the input's "
                         f"shape {input.shape}, got shape {target.shape}, dtype {target.dtype}")
    return cross_entropy(input, target, reduction=reduction)
