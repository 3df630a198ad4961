"""Training pairs for restoration: random crops of photographs, degraded on the fly.

``PatchDataset(photos, patch_size, degrade, length, seed)[i]`` cuts a patch from one of the
photos (chosen in proportion to its area, so a large photo is not under-sampled), turns it by
one of the 8 symmetries of the square, and returns ``(degrade(patch, rng), patch)``. With
``margin`` m the crop is m pixels larger on every side and both are cut back after degrading,
so that a blur sees the photo's real surroundings instead of a padded edge. Sample i
of epoch e draws everything from the generator seeded by (seed, e, i): reproducible, and a
fresh crop and fresh noise every epoch once ``set_epoch(e)`` is called (the restoration tasks
do it from their training module).

``DegradedImages(photos, degrade, seed)`` is the fixed counterpart for validation and testing:
whole photos, each degraded once with its own seeded draw.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from tinyvision.data.dataset import Dataset

# degrade(clean (C, P, P) float32, rng) -> the network's input (any shape)
Degrade = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def dihedral(image: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 symmetries of the square on (C, H, W): k % 4 quarter turns, mirrored if k >= 4."""
    out = np.rot90(image, k % 4, axes=(1, 2))
    return out[:, :, ::-1] if k >= 4 else out


class PatchDataset(Dataset):
    """``length`` random (degraded, clean) patch pairs per epoch from ``photos`` ((C, H, W) arrays)."""

    def __init__(self, photos: list[np.ndarray], patch_size: int, degrade: Degrade, length: int,
                 seed: int = 0, augment: bool = True, margin: int = 0) -> None:
        if not photos:
            raise ValueError("PatchDataset: needs at least one photo")
        small = [p.shape for p in photos if min(p.shape[1:]) < patch_size + 2 * margin]
        if small:
            raise ValueError(f"PatchDataset: patch_size {patch_size} (+ 2 x margin {margin}) exceeds photos of shape {small}")
        self.photos, self.patch_size, self.degrade, self.margin = photos, patch_size, degrade, margin
        self.length, self.seed, self.augment, self.epoch = length, seed, augment, 0
        areas = np.array([p.shape[1] * p.shape[2] for p in photos], dtype=np.float64)
        self.weights = areas / areas.sum()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < self.length:
            raise IndexError(f"PatchDataset: index {index} out of range for {self.length} patches")
        rng = np.random.default_rng((self.seed, self.epoch, index))
        photo = self.photos[rng.choice(len(self.photos), p=self.weights)]
        p = self.patch_size + 2 * self.margin
        top = rng.integers(0, photo.shape[1] - p + 1)
        left = rng.integers(0, photo.shape[2] - p + 1)
        patch = photo[:, top:top + p, left:left + p]
        if self.augment:
            patch = dihedral(patch, int(rng.integers(8)))
        patch = np.ascontiguousarray(patch, dtype=np.float32)
        degraded = np.asarray(self.degrade(patch, rng), dtype=np.float32)
        m = self.margin
        if m:  # degraded with its true surroundings, then the surroundings dropped
            degraded, patch = degraded[:, m:-m, m:-m], patch[:, m:-m, m:-m]
        return np.ascontiguousarray(degraded), np.ascontiguousarray(patch)


class DegradedImages(Dataset):
    """Whole photos, each degraded once (photo i with the generator seeded by (seed, i))."""

    def __init__(self, photos: list[np.ndarray], degrade: Degrade, seed: int = 0) -> None:
        self.pairs = [(np.asarray(degrade(p, np.random.default_rng((seed, i))), dtype=np.float32), p)
                      for i, p in enumerate(photos)]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.pairs[index]
