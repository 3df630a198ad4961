"""A generated dataset of coloured circles, squares and triangles on noisy backgrounds.

Each sample has an image, a class, a bounding box and a mask, so the same data serves
classification, detection and segmentation. Learnable but not trivial: the size, position,
rotation and colour of the shape and the background's colour, gradient and noise all vary.
The samples depend only on ``seed`` (a generator of their own, not the global one).
"""
from __future__ import annotations

import itertools
from typing import Any, Callable

import numpy as np

from tinyvision.data.dataset import Dataset, TensorDataset

CLASSES = ("circle", "square", "triangle")
SEGMENTATION_CLASSES = ("background",) + CLASSES  # class c of a semantic map / scene label
NOISE_STD = 0.06      # per-pixel Gaussian noise on every image
MIN_CONTRAST = 0.35   # mean |shape colour - background colour| over the channels
RADIUS_RANGE = (0.25, 0.4)  # circumradius of the shape, as a fraction of the image size
RAMP = 0.3            # background brightness change across the image, along a random direction
SCENE_RADIUS_RANGE = (0.1, 0.22)  # smaller shapes in a scene, so that several fit and overlap
OBJECT_CONTRAST = 0.2  # mean |colour difference| between two objects of one scene


def _polygon_mask(xs: np.ndarray, ys: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Pixels whose centre lies inside the convex polygon ``corners`` (K, 2), counter-clockwise
    in image coordinates: inside = on the left of (cross product >= 0) every edge."""
    inside = np.ones(xs.shape, dtype=bool)
    for (ax, ay), (bx, by) in zip(corners, np.roll(corners, -1, axis=0)):
        inside &= (bx - ax) * (ys - ay) - (by - ay) * (xs - ax) >= 0
    return inside


def _shape_mask(rng: np.random.Generator, label: int, size: int, radius_range: tuple[float, float],
                xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """The (size, size) bool mask of one shape of class ``label`` with a random circumradius
    (a fraction ``radius_range`` of the image size), centre (fully inside) and rotation."""
    radius = rng.uniform(*radius_range) * size
    cx, cy = rng.uniform(radius, size - radius, 2)               # fully inside the image
    if label == 0:
        return (xs - cx) ** 2 + (ys - cy) ** 2 <= radius ** 2
    k = 4 if label == 1 else 3
    angles = rng.uniform(0, 2 * np.pi) + 2 * np.pi * np.arange(k) / k
    corners = np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], axis=1)
    return _polygon_mask(xs, ys, corners)


def _background(rng: np.random.Generator, size: int, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A random colour (3,) and the (3, size, size) image of it with a linear brightness ramp."""
    bg = rng.uniform(0.0, 1.0, 3)
    angle = rng.uniform(0, 2 * np.pi)  # a unit direction keeps the ramp within RAMP * sqrt(2) / 2
    ramp = ((xs - size / 2) * np.cos(angle) + (ys - size / 2) * np.sin(angle)) / size * RAMP
    return bg, bg[:, None, None] + ramp[None]


def _colour(rng: np.random.Generator, bg: np.ndarray, others: list[np.ndarray] = ()) -> np.ndarray:
    """A random colour at least MIN_CONTRAST from the background and OBJECT_CONTRAST from each
    of ``others`` (mean |difference| over the channels), by rejection. Only a handful of colours
    can be pairwise that far apart, so after 200 draws the others are no longer asked about."""
    for tries in itertools.count():
        colour = rng.uniform(0.0, 1.0, 3)
        if np.abs(colour - bg).mean() >= MIN_CONTRAST and (tries >= 200 or all(
                np.abs(colour - o).mean() >= OBJECT_CONTRAST for o in others)):
            return colour


def _noisy(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    img = img + rng.normal(0.0, NOISE_STD, img.shape)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def _draw(rng: np.random.Generator, label: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One (3, size, size) float32 image and its (size, size) bool mask."""
    ys, xs = np.mgrid[0:size, 0:size] + 0.5                      # pixel centres
    mask = _shape_mask(rng, label, size, RADIUS_RANGE, xs, ys)
    # background: a random colour with a linear gradient; shape: a colour far enough from it
    bg, img = _background(rng, size, xs, ys)
    colour = _colour(rng, bg)
    img = np.where(mask[None], colour[:, None, None], img)
    return _noisy(rng, img), mask


def _draw_scene(rng: np.random.Generator, size: int, n_objects: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One (3, size, size) float32 image of ``n_objects`` shapes painted one after another, its
    (size, size) uint8 instance map (0 background, i + 1 where object i is visible) and the
    (n_objects,) class of each object. Later objects occlude earlier ones, so the instance map
    holds exactly the visible part of every object; an object may end up fully covered."""
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    bg, img = _background(rng, size, xs, ys)
    labels = rng.integers(0, len(CLASSES), n_objects)
    instances = np.zeros((size, size), dtype=np.uint8)
    colours: list[np.ndarray] = []
    for i, label in enumerate(labels):
        mask = _shape_mask(rng, int(label), size, SCENE_RADIUS_RANGE, xs, ys)
        colours.append(_colour(rng, bg, colours))
        img = np.where(mask[None], colours[-1][:, None, None], img)
        instances[mask] = i + 1
    return _noisy(rng, img), instances, labels


def mask_to_box(mask: np.ndarray) -> np.ndarray:
    """(x0, y0, x1, y1) in pixel-edge coordinates: pixel (r, c) covers [c, c+1) x [r, r+1),
    so x1 = last column + 1 and the box area equals the pixels it spans."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float32)


def shapes(n: int, image_size: int = 32, seed: int = 0, target: str = "label",
           transform: Callable | None = None) -> TensorDataset:
    """``n`` generated samples, classes balanced at random (0 circle, 1 square, 2 triangle).

    target="label":    samples are (image (3, H, W) float32, label int64).
    target="all":      samples are (image, {"labels": int64, "boxes": (4,) float32 (x0, y0, x1, y1),
                       "masks": (H, W) bool}).
    target="semantic": samples are (image, (H, W) int64 class per pixel: 0 background, label + 1
                       on the shape, as in ``SEGMENTATION_CLASSES``).
    ``transform`` applies to the image only (geometric transforms do not move boxes or masks).
    """
    if n < 1 or image_size < 8:
        raise ValueError(f"shapes: need n >= 1 and image_size >= 8, got n={n}, image_size={image_size}")
    if target not in ("label", "all", "semantic"):
        raise ValueError(f"shapes: target must be 'label', 'all' or 'semantic', got {target!r}")
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(CLASSES), n)
    drawn = [_draw(rng, int(c), image_size) for c in labels]
    images = np.stack([img for img, _ in drawn])
    masks = np.stack([m for _, m in drawn])
    labels = labels.astype(np.int64)
    if target == "label":
        return TensorDataset(images, labels, transform=transform)
    if target == "semantic":
        return TensorDataset(images, masks * (labels[:, None, None] + 1), transform=transform)
    boxes = np.stack([mask_to_box(m) for m in masks])
    return TensorDataset(images, {"labels": labels, "boxes": boxes, "masks": masks}, transform=transform)


class ShapeScenes(Dataset):
    """Scenes of several overlapping shapes (made by ``shapes_scenes``).

    Stored compactly as the images (n, 3, H, W) float32, one (H, W) uint8 instance map per
    image (0 background, i + 1 on the visible pixels of object i, objects in painting order)
    and each image's object classes; the target dict is built on access.
    """

    def __init__(self, images: np.ndarray, instances: np.ndarray, labels: list[np.ndarray],
                 target: str = "all", transforms: Callable | None = None) -> None:
        self.images, self.instances, self.labels = images, instances, labels
        self.target, self.transforms = target, transforms
        # class per pixel: look the instance id up in [0, label_1, ..., label_N]
        self.semantic = np.stack([np.concatenate([[0], lab]).astype(np.uint8)[ins]
                                  for ins, lab in zip(instances, labels)])

    def __len__(self) -> int:
        return len(self.images)

    def target_dict(self, index: int) -> dict[str, np.ndarray]:
        """{"boxes" (N, 4) float32 xyxy pixel edges, "labels" (N,) int64 in 1..3,
        "masks" (N, H, W) bool, disjoint, "semantic" (H, W) int64}."""
        labels = self.labels[index].astype(np.int64)
        masks = self.instances[index][None] == np.arange(1, len(labels) + 1)[:, None, None]
        boxes = np.stack([mask_to_box(m) for m in masks]).reshape(-1, 4)
        return {"boxes": boxes, "labels": labels, "masks": masks,
                "semantic": self.semantic[index].astype(np.int64)}

    def __getitem__(self, index: int) -> tuple[np.ndarray, Any]:
        image = self.images[index]
        target = self.target_dict(index)
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        if self.target == "semantic":
            target = target["semantic"]
        return image, target

    def gather(self, indices: np.ndarray) -> tuple | None:
        """A whole batch of (images, semantic maps) at once; None (sample by sample) when a
        transform must run or the targets are dicts of different lengths."""
        if self.transforms is not None or self.target != "semantic":
            return None
        return self.images[indices], self.semantic[indices].astype(np.int64)


def shapes_scenes(n: int, image_size: int = 64, min_objects: int = 1, max_objects: int = 5, seed: int = 0,
                  target: str = "all", transforms: Callable | None = None) -> ShapeScenes:
    """``n`` scenes of ``min_objects``..``max_objects`` overlapping shapes (circle, square,
    triangle of random size, position, rotation and colour) on a noisy gradient background.

    Objects are painted one after another, so a later object occludes the earlier ones: the
    instance masks hold only the visible pixels (they are disjoint), the boxes are the extents
    of those visible masks, and an object that ends up fully covered is dropped (so a scene may
    hold fewer objects than were drawn, never fewer than one: the last one is whole).

    Classes follow torchvision's detection convention, 0 = background: label c is the shape
    ``SEGMENTATION_CLASSES[c]`` = ``CLASSES[c - 1]``, so ``semantic[masks[i]] == labels[i]``.

    target="all":      samples are (image (3, H, W) float32, {"boxes" (N, 4) float32 (x0, y0, x1, y1)
                       in pixel edges, "labels" (N,) int64, "masks" (N, H, W) bool,
                       "semantic" (H, W) int64}) with N >= 1 varying per image (collate to lists).
    target="semantic": samples are (image, semantic (H, W) int64): batches stack.
    ``transforms`` is a joint transform ``(image, target dict) -> (image, target dict)``
    (tinyvision.data.joint), applied before the target is chosen.
    """
    if n < 1 or image_size < 16:
        raise ValueError(f"shapes_scenes: need n >= 1 and image_size >= 16, got n={n}, image_size={image_size}")
    if not 1 <= min_objects <= max_objects <= 255:
        raise ValueError(f"shapes_scenes: need 1 <= min_objects <= max_objects <= 255, "
                         f"got min_objects={min_objects}, max_objects={max_objects}")
    if target not in ("all", "semantic"):
        raise ValueError(f"shapes_scenes: target must be 'all' or 'semantic', got {target!r}")
    rng = np.random.default_rng(seed)
    images, instances, labels = [], [], []
    for _ in range(n):
        img, ins, lab = _draw_scene(rng, image_size, int(rng.integers(min_objects, max_objects + 1)))
        visible = np.unique(ins[ins > 0]) - 1            # objects with at least one pixel left
        renumber = np.zeros(len(lab) + 1, dtype=np.uint8)
        renumber[visible + 1] = np.arange(1, len(visible) + 1)
        images.append(img)
        instances.append(renumber[ins])
        labels.append(lab[visible] + 1)
    return ShapeScenes(np.stack(images), np.stack(instances), labels, target=target, transforms=transforms)
