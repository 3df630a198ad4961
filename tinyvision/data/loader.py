"""DataLoader: batches of samples, shuffled with a seeded generator, stacked into Tensors.

One epoch is: draw an order (a permutation when shuffling), cut it into batches of indices,
and for each batch either ask the dataset for the whole batch at once (``dataset.gather``,
one fancy-index per array) or fetch ``dataset[i]`` per index and ``collate`` the list.
"""
from __future__ import annotations

import numbers
from typing import Any, Callable, Iterator

import numpy as np

from tinyvision.autograd.tensor import Tensor, get_default_dtype
from tinyvision.data.dataset import map_structure
from tinyvision.random import generator


def _to_tensor(array: Any) -> Tensor:
    """Batched array -> Tensor: floats become the default float dtype (float32, images and
    boxes), integers int64 (labels), except uint8 (raw pixels) and bool (masks) which stay."""
    if isinstance(array, Tensor):
        return array
    array = np.asarray(array)
    if array.dtype.kind == "f":
        array = array.astype(get_default_dtype(), copy=False)
    elif array.dtype.kind in "iu" and array.dtype != np.uint8:
        array = array.astype(np.int64, copy=False)
    elif array.dtype.kind not in "bu":
        raise TypeError(f"default_collate: cannot make a tensor from dtype {array.dtype}")
    return Tensor(array)


def default_convert(batch: Any) -> Any:
    """An already-batched structure (arrays with the batch along dim 0, in tuples/dicts) ->
    the same structure of Tensors; strings stay as they are."""
    return map_structure(lambda a: a if isinstance(a, str) else _to_tensor(a), batch)


def default_collate(samples: list) -> Any:
    """A list of samples -> one batch.

    Arrays, Tensors and numbers are stacked along a new dim 0 (see ``_to_tensor`` for the
    dtypes); tuples/lists are collated position by position and dicts key by key, recursively;
    strings are returned as a list.
    """
    first = samples[0]
    if isinstance(first, Tensor):
        return Tensor(first._xp.stack([s.data for s in samples]))
    if isinstance(first, (np.ndarray, numbers.Number, np.generic)):
        return _to_tensor(np.stack([np.asarray(s) for s in samples]))
    if isinstance(first, str):
        return list(samples)
    if isinstance(first, dict):
        return {k: default_collate([s[k] for s in samples]) for k in first}
    if isinstance(first, (tuple, list)):
        if any(len(s) != len(first) for s in samples):
            raise ValueError(f"default_collate: samples have different lengths {sorted({len(s) for s in samples})}")
        return type(first)(default_collate(list(field)) for field in zip(*samples))
    raise TypeError(f"default_collate: cannot batch samples of type {type(first).__name__}")


class DataLoader:
    """Iterate over ``dataset`` in batches of ``batch_size``.

    shuffle: a new permutation every epoch, drawn from ``np.random.default_rng(seed)`` when
        ``seed`` is given (the same sequence of epochs for the same seed), else from
        tinyvision's global generator (seeded by ``tinyvision.manual_seed``).
    drop_last: drop the last batch when it is smaller than ``batch_size``.
    collate_fn: list of samples -> batch; ``default_collate`` when None. With the default and
        a dataset that has ``gather(indices)`` (TensorDataset), whole batches are taken at once.
    sampler: an iterable of indices with a length that decides the order instead (e.g. a
        ``DistributedSampler``: this rank's share); excludes ``shuffle``, as in PyTorch.
    """

    def __init__(self, dataset: Any, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False,
                 collate_fn: Callable[[list], Any] | None = None, seed: int | None = None,
                 sampler: Any = None) -> None:
        if not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        self.sampler = sampler
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.shuffle, self.drop_last, self.collate_fn = shuffle, drop_last, collate_fn
        self._rng = None if seed is None else np.random.default_rng(seed)

    def state_dict(self) -> dict:
        """Where the seeded shuffle stands, so that a resumed run draws the same orders."""
        return {"rng": self._rng.bit_generator.state} if self._rng is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self._rng is not None and state.get("rng"):
            self._rng.bit_generator.state = state["rng"]

    def __len__(self) -> int:
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _order(self) -> np.ndarray:
        if self.sampler is not None:
            return np.fromiter(self.sampler, dtype=np.int64)
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        return (self._rng or generator()).permutation(n)

    def _fetch(self, indices: np.ndarray) -> Any:
        if self.collate_fn is None:
            gather = getattr(self.dataset, "gather", None)
            batch = gather(indices) if gather is not None else None
            if batch is not None:
                return default_convert(batch)
        return (self.collate_fn or default_collate)([self.dataset[int(i)] for i in indices])

    def __iter__(self) -> Iterator[Any]:
        order = self._order()
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield self._fetch(order[start:start + self.batch_size])
