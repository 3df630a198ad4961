"""Datasets: anything with ``__len__`` and ``__getitem__``, as in ``torch.utils.data``.

``TensorDataset`` keeps whole arrays in memory and can hand the loader a full batch with one
fancy-index per array (``gather``), so a training loop pays no per-sample Python cost.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from tinyvision.autograd.tensor import Tensor


class Dataset:
    """A map-style dataset: ``len(ds)`` samples, ``ds[i]`` the i-th one."""

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")


def map_structure(fn: Callable[[Any], Any], tree: Any) -> Any:
    """Apply ``fn`` to every leaf of nested tuples / lists / dicts, keeping the nesting."""
    if isinstance(tree, dict):
        return {k: map_structure(fn, v) for k, v in tree.items()}
    if isinstance(tree, (tuple, list)):
        return type(tree)(map_structure(fn, v) for v in tree)
    return fn(tree)


def _leaves(tree: Any) -> list:
    out: list = []
    map_structure(out.append, tree)
    return out


class TensorDataset(Dataset):
    """Samples are rows of in-memory arrays: ``ds[i] == (a[i], b[i], ...)``.

    Each positional argument is an array or Tensor with the samples along dim 0, or a dict of
    them (e.g. detection targets ``{"labels": (N,), "boxes": (N, 4)}``). Tensors are stored as
    their NumPy arrays. ``transform`` (tinyvision.data.transforms) is applied to the first
    element, the image, of each sample; ``target_transform`` to the second.
    """

    def __init__(self, *tensors: Any, transform: Callable | None = None,
                 target_transform: Callable | None = None) -> None:
        if not tensors:
            raise ValueError("TensorDataset needs at least one array")
        self.tensors = tuple(map_structure(_as_array, t) for t in tensors)
        lengths = [len(a) for a in _leaves(self.tensors)]
        if len(set(lengths)) != 1:
            shapes = [a.shape for a in _leaves(self.tensors)]
            raise ValueError(f"TensorDataset: all arrays need the same length (dim 0), got shapes {shapes}")
        self.transform, self.target_transform = transform, target_transform

    def __len__(self) -> int:
        return len(_leaves(self.tensors)[0])

    def __getitem__(self, index: int) -> tuple:
        sample = [map_structure(lambda a: a[index], t) for t in self.tensors]
        if self.transform is not None:
            sample[0] = self.transform(sample[0])
        if self.target_transform is not None and len(sample) > 1:
            sample[1] = self.target_transform(sample[1])
        return tuple(sample)

    def gather(self, indices: np.ndarray) -> tuple | None:
        """A whole batch at once, ``(a[indices], b[indices], ...)``; None when a transform must
        run per sample (the loader then falls back to ``ds[i]`` one by one)."""
        if self.transform is not None or self.target_transform is not None:
            return None
        return tuple(map_structure(lambda a: a[indices], t) for t in self.tensors)


def _as_array(x: Any) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.data
    if not hasattr(x, "shape") or not hasattr(x, "__getitem__"):
        x = np.asarray(x)
    if x.ndim == 0:
        raise ValueError("TensorDataset: each array needs a sample dim (dim 0), got a scalar")
    return x


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset: Any, indices: Sequence[int]) -> None:
        self.dataset, self.indices = dataset, np.asarray(indices, dtype=np.int64)
        if self.indices.size and (self.indices.min() < -len(dataset) or self.indices.max() >= len(dataset)):
            raise IndexError(f"Subset: indices must lie in [0, {len(dataset)}), got "
                             f"[{self.indices.min()}, {self.indices.max()}]")

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[int(self.indices[index])]

    def gather(self, indices: np.ndarray) -> Any:
        gather = getattr(self.dataset, "gather", None)
        return None if gather is None else gather(self.indices[indices])


def random_split(dataset: Any, lengths: Sequence[int | float], seed: int = 0) -> list[Subset]:
    """Split ``dataset`` into non-overlapping random Subsets, as ``torch.utils.data.random_split``.

    lengths: sample counts that add up to ``len(dataset)``, or fractions that add up to 1
        (each gets ``floor(fraction * len)``; the samples left over go one each to the first
        parts, round-robin, as torch does).
    seed: the permutation comes from ``numpy.random.default_rng(seed)``, so the split is the
        same on every run (and never depends on the global generator). It is not torch's
        permutation: the same seed gives a different split there.
    """
    n = len(dataset)
    lengths = list(lengths)
    if lengths and all(isinstance(x, float) for x in lengths) and abs(sum(lengths) - 1) < 1e-9:
        if any(not 0 <= x <= 1 for x in lengths):
            raise ValueError(f"random_split: fractions must lie in [0, 1], got {lengths}")
        counts = [int(x * n) for x in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if any(int(x) != x or x < 0 for x in lengths) or sum(lengths) != n:
        raise ValueError(f"random_split: lengths must be counts adding up to len(dataset) = {n}, "
                         f"or fractions adding up to 1; got {lengths}")
    order = np.random.default_rng(seed).permutation(n)
    bounds = np.cumsum([0, *lengths])
    return [Subset(dataset, order[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
