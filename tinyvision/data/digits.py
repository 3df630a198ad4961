"""The 1,797 handwritten 8x8 digits that ship inside scikit-learn: real data, no download.

Split (fixed, stratified, independent of any random generator): within each class, in the
order scikit-learn stores the samples, every 5th sample (positions 4, 9, 14, ...) is a test
sample and the rest are training samples: 1,442 train / 355 test (34-36 per class).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from tinyvision.data.dataset import TensorDataset
from tinyvision.data.functional import resize

TEST_EVERY = 5


def _load_sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise ImportError("digits() reads the copy of the digits data that ships with scikit-learn, "
                          "which is not installed: pip install tinyvision[data]") from e
    bunch = load_digits()
    return bunch.images, bunch.target


def split_indices(labels: np.ndarray, train: bool) -> np.ndarray:
    """Indices of the train or test part: every ``TEST_EVERY``-th sample of each class is test."""
    is_test = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        is_test[members[TEST_EVERY - 1::TEST_EVERY]] = True
    return np.flatnonzero(~is_test if train else is_test)


def digits(train: bool = True, size: int = 8, transform: Callable | None = None) -> TensorDataset:
    """The scikit-learn digits as a TensorDataset of (image, label).

    image: (1, size, size) float32 in [0, 1] (raw values 0..16 divided by 16); ``size`` 8 keeps
    the originals, 32 resizes them bilinearly (for LeNet-5's 32x32 input). label: int64 0..9.
    """
    if size < 1:
        raise ValueError(f"digits: size must be positive, got {size}")
    images, labels = _load_sklearn_digits()
    keep = split_indices(labels, train)
    x = (images[keep] / 16.0).astype(np.float32)[:, None]          # (N, 1, 8, 8)
    if size != 8:
        x = resize(x[:, 0], (size, size))[:, None]                  # the N images as N channels
    return TensorDataset(x, labels[keep].astype(np.int64), transform=transform)
