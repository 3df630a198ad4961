"""Sorting and selection: sort, argsort, topk, kthvalue, median, unique, nonzero, searchsorted.

Every differentiable op here *selects* elements: its values are ``gather(input, dim, indices)``
for indices found on the raw array. So there is no new backward to write: the gradient of a
gather is a scatter-add back to the chosen positions (``indexing.gather``), which is exactly
PyTorch's gradient for sort, topk, kthvalue and median. Indices, unique, nonzero and
searchsorted are integers and carry no gradient.

Ties: PyTorch leaves the order of equal elements unspecified unless ``stable=True``; we always
sort stably (equal elements keep their input order), which is one of the orders it allows.
"""
from __future__ import annotations

from collections import namedtuple
from typing import Any

import numpy as np

from tinyvision.autograd.tensor import Tensor
from tinyvision.functional._util import normalize_dim
from tinyvision.functional.indexing import gather
from tinyvision.kernels.compat import array_module

values_indices = namedtuple("values_indices", ["values", "indices"])


def _sort_indices(x, axis: int, descending: bool):
    """Stable argsort along ``axis``. Descending keeps equal elements in input order and puts
    NaN first (PyTorch's order: NaN counts as the largest), by sorting the reversed array
    ascending and reading the result backwards."""
    xp = array_module(x)
    if not descending:
        return xp.argsort(x, axis=axis, kind="stable")
    n = x.shape[axis]
    rev = xp.argsort(xp.flip(x, axis), axis=axis, kind="stable")
    return xp.flip(n - 1 - rev, axis)


def _values(input: Tensor, dim: int, idx, keepdim: bool = True) -> values_indices:
    """(gather(input, dim, idx), idx), the dim squeezed unless ``keepdim``."""
    indices = Tensor(idx.astype(np.int64, copy=False))
    if input.ndim == 0:  # a 0-d tensor is its own sort: PyTorch returns it with index 0
        return values_indices(input.reshape(()), indices.reshape(()))
    values = gather(input, dim, indices)
    if not keepdim:
        values, indices = values.squeeze(dim), indices.squeeze(dim)
    return values_indices(values, indices)


def sort(input: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> values_indices:
    """(values, indices) sorted along ``dim``; ``values = gather(input, dim, indices)``.

    Shapes: both like input. Gradient: each value's gradient goes back to where it came from.
    """
    d = normalize_dim(dim, input.ndim, "sort")
    if input.ndim == 0:
        return _values(input, 0, array_module(input.data).zeros((), dtype=np.int64))
    return _values(input, d, _sort_indices(input.data, d, descending))


def argsort(input: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    """The indices that sort ``input`` along ``dim`` (int64, no gradient)."""
    return sort(input, dim, descending, stable).indices


def _pick(op: str, input: Tensor, k: int, dim: int, descending: bool, kth: bool, keepdim: bool = True) -> values_indices:
    """The first ``k`` entries of the stable sort along ``dim`` (values and indices), or with
    ``kth`` only the k-th (k counts from 1)."""
    d = normalize_dim(dim, input.ndim, op)
    n = input.shape[d] if input.ndim else 1
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"{op}: k must be an int, got {k!r}")
    low = 1 if kth else 0
    if not low <= k <= n:
        raise IndexError(f"{op}: k ({k}) is out of range for dim {dim} of size {n} (expected {low}..{n})")
    if input.ndim == 0:
        return sort(input)
    idx = _sort_indices(input.data, d, descending)
    return _values(input, d, idx[(slice(None),) * d + (slice(k - 1 if kth else 0, k),)], keepdim)


def topk(input: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> values_indices:
    """The ``k`` largest (or smallest) elements along ``dim`` and their indices, largest
    first. Shapes: input's with dim of size k. Gradient: back to the chosen positions."""
    return _pick("topk", input, k, dim, largest, False)


def kthvalue(input: Tensor, k: int, dim: int = -1, keepdim: bool = False) -> values_indices:
    """The k-th smallest element along ``dim`` (k counts from 1) and its index."""
    return _pick("kthvalue", input, k, dim, False, True, keepdim)


def median(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Any:
    """The median; for an even count the *lower* of the two middle values (PyTorch's rule,
    not their mean), so it is always an element and its gradient goes to that one element.

    ``median(x)`` gives a 0-d tensor over all elements; ``median(x, dim)`` gives (values,
    indices) along ``dim``.
    """
    if dim is None:
        flat = input.reshape(-1)
        if flat.shape[0] == 0:
            raise IndexError(f"median: cannot take the median of an empty tensor (shape {input.shape})")
        return kthvalue(flat, (flat.shape[0] + 1) // 2, 0).values
    d = normalize_dim(dim, input.ndim, "median")
    n = input.shape[d] if input.ndim else 1
    if n == 0:
        raise IndexError(f"median: dim {dim} of shape {input.shape} is empty")
    return kthvalue(input, (n + 1) // 2, dim, keepdim)


def unique(input: Tensor, sorted: bool = True, return_inverse: bool = False, return_counts: bool = False,
           dim: int | None = None) -> Any:
    """The distinct elements of the flattened input, sorted (forward only, as in PyTorch); with
    ``dim``, the distinct slices along that dim, in lexicographic order.

    ``return_inverse`` adds, for each input element (input's shape) or each slice along
    ``dim``, the index of its value in the output; ``return_counts`` adds how often each
    value occurs.
    """
    xp = array_module(input.data)
    if dim is None:
        x, axis = input.data.reshape(-1), None
    else:
        x, axis = input.data, normalize_dim(dim, input.ndim, "unique")
    values, inverse, counts = xp.unique(x, return_inverse=True, return_counts=True, axis=axis)
    out = [Tensor(values)]
    if return_inverse:
        out.append(Tensor(inverse.reshape(input.shape if dim is None else -1).astype(np.int64)))
    if return_counts:
        out.append(Tensor(counts.astype(np.int64)))
    return out[0] if len(out) == 1 else tuple(out)


def nonzero(input: Tensor, *, as_tuple: bool = False) -> Any:
    """Indices of the nonzero elements: an (n, ndim) int64 tensor, one row per element in
    row-major order; with ``as_tuple``, one 1-D tensor per dim (what ``x[...]`` accepts)."""
    x = input.data
    xp = array_module(x)
    if x.ndim == 0:  # PyTorch: a 0-d input counts as one element, with no coordinates
        n = int(bool(x))
        return (Tensor(xp.zeros(n, dtype=np.int64)),) if as_tuple else Tensor(xp.zeros((n, 0), dtype=np.int64))
    coords = tuple(c.astype(np.int64) for c in xp.nonzero(x))
    if as_tuple:
        return tuple(Tensor(c) for c in coords)
    return Tensor(xp.stack(coords, axis=1))


def searchsorted(sorted_sequence: Tensor, input: Any, *, out_int32: bool = False, right: bool = False,
                 side: str | None = None, sorter: Any = None) -> Tensor:
    """Where each value of ``input`` would be inserted into ``sorted_sequence`` (sorted along
    its last dim) to keep it sorted: the first such index, or the last with ``right=True`` /
    ``side='right'``. ``sorted_sequence`` is 1-D, or (..., m) with input (..., k) sharing its
    leading dims (one search per row). ``sorter`` gives the order that sorts it, if it is not.
    """
    if side is not None and side not in ("left", "right"):
        raise ValueError(f"searchsorted: side must be 'left' or 'right', got {side!r}")
    if side is not None and (side == "right") != right and right:
        raise RuntimeError(f"searchsorted: side and right can't be set to opposites, got side of {side} "
                           f"while right was {right}")
    side = side or ("right" if right else "left")
    seq = sorted_sequence.data
    xp = array_module(seq)
    scalar = not isinstance(input, Tensor)
    values = xp.asarray(input.data if isinstance(input, Tensor) else input)
    if sorter is not None:
        order = sorter.data if isinstance(sorter, Tensor) else xp.asarray(sorter)
        if tuple(order.shape) != tuple(seq.shape):
            raise ValueError(f"searchsorted: sorter of shape {tuple(order.shape)} must have "
                             f"sorted_sequence's shape {tuple(seq.shape)}")
        seq = xp.take_along_axis(seq, order, axis=-1)
    if seq.ndim == 0:
        raise ValueError("searchsorted: sorted_sequence must have at least 1 dim, got a 0-d tensor")
    if seq.ndim == 1:
        out = xp.searchsorted(seq, values, side=side)
    else:
        if scalar or values.shape[:-1] != seq.shape[:-1]:
            raise ValueError(f"searchsorted: sorted_sequence of shape {tuple(seq.shape)} and input of shape "
                             f"{tuple(values.shape)} must share all dims but the last")
        rows_seq = seq.reshape(-1, seq.shape[-1])
        rows_val = values.reshape(-1, values.shape[-1])
        out = xp.stack([xp.searchsorted(s, v, side=side) for s, v in zip(rows_seq, rows_val)]) \
            if rows_seq.shape[0] else xp.zeros(rows_val.shape, dtype=np.int64)
        out = out.reshape(values.shape)
    return Tensor(xp.asarray(out).astype(np.int32 if out_int32 else np.int64))
