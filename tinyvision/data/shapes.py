"""A generated dataset of coloured circles, squares and triangles on noisy backgrounds.

Each sample has an image, a class, a bounding box and a mask, so the same data serves
classification, detection and segmentation. Learnable but not trivial: the size, position,
rotation and colour of the shape and the background's colour, gradient and noise all vary.
The samples depend only on ``seed`` (a generator of their own, not the global one).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from tinyvision.data.dataset import TensorDataset

CLASSES = ("circle", "square", "triangle")
NOISE_STD = 0.06      # per-pixel Gaussian noise on every image
MIN_CONTRAST = 0.35   # mean |shape colour - background colour| over the channels
RADIUS_RANGE = (0.25, 0.4)  # circumradius of the shape, as a fraction of the image size
RAMP = 0.3            # background brightness change across the image, along a random direction


def _polygon_mask(xs: np.ndarray, ys: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Pixels whose centre lies inside the convex polygon ``corners`` (K, 2), counter-clockwise
    in image coordinates: inside = on the left of (cross product >= 0) every edge."""
    inside = np.ones(xs.shape, dtype=bool)
    for (ax, ay), (bx, by) in zip(corners, np.roll(corners, -1, axis=0)):
        inside &= (bx - ax) * (ys - ay) - (by - ay) * (xs - ax) >= 0
    return inside


def _draw(rng: np.random.Generator, label: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One (3, size, size) float32 image and its (size, size) bool mask."""
    ys, xs = np.mgrid[0:size, 0:size] + 0.5                      # pixel centres
    radius = rng.uniform(*RADIUS_RANGE) * size
    cx, cy = rng.uniform(radius, size - radius, 2)               # fully inside the image
    if label == 0:
        mask = (xs - cx) ** 2 + (ys - cy) ** 2 <= radius ** 2
    else:
        k = 4 if label == 1 else 3
        angles = rng.uniform(0, 2 * np.pi) + 2 * np.pi * np.arange(k) / k
        corners = np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], axis=1)
        mask = _polygon_mask(xs, ys, corners)
    # background: a random colour with a linear gradient; shape: a colour far enough from it
    bg = rng.uniform(0.0, 1.0, 3)
    angle = rng.uniform(0, 2 * np.pi)  # a unit direction keeps the ramp within RAMP * sqrt(2) / 2
    ramp = ((xs - size / 2) * np.cos(angle) + (ys - size / 2) * np.sin(angle)) / size * RAMP
    while True:
        colour = rng.uniform(0.0, 1.0, 3)
        if np.abs(colour - bg).mean() >= MIN_CONTRAST:
            break
    img = bg[:, None, None] + ramp[None]
    img = np.where(mask[None], colour[:, None, None], img)
    img = img + rng.normal(0.0, NOISE_STD, img.shape)
    return np.clip(img, 0.0, 1.0).astype(np.float32), mask


def mask_to_box(mask: np.ndarray) -> np.ndarray:
    """(x0, y0, x1, y1) in pixel-edge coordinates: pixel (r, c) covers [c, c+1) x [r, r+1),
    so x1 = last column + 1 and the box area equals the pixels it spans."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float32)


def shapes(n: int, image_size: int = 32, seed: int = 0, target: str = "label",
           transform: Callable | None = None) -> TensorDataset:
    """``n`` generated samples, classes balanced at random (0 circle, 1 square, 2 triangle).

    target="label": samples are (image (3, H, W) float32, label int64).
    target="all":   samples are (image, {"labels": int64, "boxes": (4,) float32 (x0, y0, x1, y1),
                    "masks": (H, W) bool}).
    ``transform`` applies to the image only (geometric transforms do not move boxes or masks).
    """
    if n < 1 or image_size < 8:
        raise ValueError(f"shapes: need n >= 1 and image_size >= 8, got n={n}, image_size={image_size}")
    if target not in ("label", "all"):
        raise ValueError(f"shapes: target must be 'label' or 'all', got {target!r}")
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(CLASSES), n)
    drawn = [_draw(rng, int(c), image_size) for c in labels]
    images = np.stack([img for img, _ in drawn])
    masks = np.stack([m for _, m in drawn])
    labels = labels.astype(np.int64)
    if target == "label":
        return TensorDataset(images, labels, transform=transform)
    boxes = np.stack([mask_to_box(m) for m in masks])
    return TensorDataset(images, {"labels": labels, "boxes": boxes, "masks": masks}, transform=transform)
