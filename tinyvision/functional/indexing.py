"""Indexing: ``x[index]`` and the ops built on it (``gather``, ``index_select``, ``masked_fill``).

There is one Function, :class:`GetItem`. Its backward is a *scatter-add*: every output element
came from one input position, so its gradient is added back there. With integer-array
indices a position can be picked twice (``x[[0, 0]]``), and then both gradients must add up,
which is why it uses ``add.at`` rather than plain assignment.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tinyvision.autograd.function import Context, Function
from tinyvision.autograd.tensor import Tensor
from tinyvision.functional import elementwise as E
from tinyvision.functional._util import normalize_dim
from tinyvision.kernels.compat import array_module, is_array, scatter_add, to_device


def unwrap_index(index: Any) -> Any:
    """Replace the Tensors inside an index expression by their arrays."""
    if isinstance(index, tuple):
        return tuple(unwrap_index(i) for i in index)
    return index.data if isinstance(index, Tensor) else index


def _is_advanced(index: tuple) -> bool:
    """Integer arrays, lists or boolean masks make NumPy's 'advanced' indexing (a copy)."""
    return any(not (i is None or i is Ellipsis or isinstance(i, (slice, int, np.integer))) for i in index)


class GetItem(Function):
    @staticmethod
    def forward(ctx: Context, x, index):
        ctx.shape, ctx.index = x.shape, index
        return x[index]

    @staticmethod
    def backward(ctx: Context, grad):
        xp = array_module(grad)
        g = xp.zeros(ctx.shape, dtype=grad.dtype)
        index = ctx.index if isinstance(ctx.index, tuple) else (ctx.index,)
        if _is_advanced(index):
            scatter_add(g, ctx.index, grad)  # repeated indices accumulate
        else:
            g[ctx.index] = grad  # a view: every position is hit at most once
        return g, None


class IndexPut(Function):
    """``out = input.clone(); out[index] = values``: what ``input[index] = values`` records.
    The overwritten positions send input no gradient; values get the gradient read back at
    ``index`` (summed over what values was broadcast to)."""

    @staticmethod
    def forward(ctx: Context, x, index, values):
        out = x.copy()
        out[index] = values
        ctx.index = index
        return out

    @staticmethod
    def backward(ctx: Context, grad):
        gx = None
        if ctx.needs_input_grad[0]:
            gx = grad.copy()
            gx[ctx.index] = 0
        return gx, None, grad[ctx.index] if ctx.needs_input_grad[2] else None


def _is_int(i: Any) -> bool:
    return isinstance(i, (int, np.integer)) and not isinstance(i, (bool, np.bool_))


def _dims_used(i: Any) -> int:
    """How many input dims one index entry consumes: None and ... none, a mask its ndim."""
    if i is None or i is Ellipsis:
        return 0
    return i.ndim if is_array(i) and i.dtype == bool else 1


def _expand_ellipsis(index: tuple, ndim: int) -> tuple:
    """Write ``...`` out as the ':'s it stands for. NumPy treats ``...`` between two arrays as
    a separator even when it stands for no dim; PyTorch does not (``x[:, i, ..., j]`` on 3
    dims), and written-out ':'s make NumPy agree."""
    at = [k for k, i in enumerate(index) if i is Ellipsis]
    if not at:
        return index
    fill = (slice(None),) * (ndim - sum(_dims_used(i) for i in index))
    return index[:at[0]] + fill + index[at[0] + 1:]


def getitem(input: Tensor, index: Any) -> Tensor:
    """``input[index]`` with ints, slices, None, ..., integer arrays and boolean masks.

    PyTorch's rule for mixing ints with arrays differs from NumPy's: PyTorch applies the ints
    first (each removes its dim), then the arrays, whereas NumPy counts an int as one more
    array, which can move the result's axes (``x[0, :, [1, 2]]`` on (2, 3, 4) gives (3, 2) in
    PyTorch, (2, 3) in NumPy). We follow PyTorch by indexing in those two steps.
    """
    index = unwrap_index(index)
    index = tuple(_on_device(i, input) for i in (index if isinstance(index, tuple) else (index,)))
    index = _expand_ellipsis(index, input.ndim)
    if not (any(is_array(i) for i in index) and any(_is_int(i) for i in index)):
        return GetItem.apply(input, index)
    # step 1: ints, slices and None; each array is held as ':' over the dims it covers
    first = tuple(k for i in index for k in ((slice(None),) * _dims_used(i) if is_array(i) else (i,)))
    # step 2: the arrays, over what is left (the ints' dims are gone, None's dims now exist)
    second = tuple(i if is_array(i) else slice(None) for i in index if not _is_int(i))
    return GetItem.apply(GetItem.apply(input, first), second)


def index_put(input: Tensor, index: Any, values: Any) -> Tensor:
    """A copy of ``input`` with ``input[index] = values`` (NumPy's indexing rules, ``values``
    broadcast); what ``Tensor.__setitem__`` runs. Gradient: 0 at the written positions for
    input, the gradient there for values."""
    index = unwrap_index(index)
    index = tuple(_on_device(i, input) for i in (index if isinstance(index, tuple) else (index,)))
    if not isinstance(values, Tensor):
        values = array_module(input.data).asarray(values)
        values = values.astype(input.dtype, copy=False) if values.dtype.kind in "biuf" else values
    elif values.dtype != input.dtype:
        values = E.cast(values, input.dtype)
    return IndexPut.apply(input, index, values)


def _on_device(i: Any, like: Tensor) -> Any:
    if isinstance(i, list):  # an empty list would become a float array: make it an index
        i = np.asarray(i) if i else np.zeros(0, dtype=np.intp)
    if hasattr(i, "shape") and not isinstance(i, (int, np.integer)):
        return to_device(i, like.device)
    return i


def _int_index(op: str, index: Any) -> Any:
    idx = index.data if isinstance(index, Tensor) else np.asarray(index)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{op}: index must be an integer tensor, got dtype {idx.dtype}")
    return idx


def index_select(input: Tensor, dim: int, index: Any) -> Tensor:
    """Pick entries ``index`` (1-D, ints) along ``dim``: out.shape[dim] = len(index)."""
    d = normalize_dim(dim, input.ndim, "index_select")
    idx = _int_index("index_select", index)
    if idx.ndim != 1:
        raise ValueError(f"index_select: index must be 1-D, got shape {tuple(idx.shape)}")
    n = input.shape[d]
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= n):
        raise IndexError(f"index_select: index values must lie in [0, {n}) for dim {dim} of "
                         f"size {n}; got min {int(idx.min())}, max {int(idx.max())}")
    return getitem(input, (slice(None),) * d + (idx,))


def gather(input: Tensor, dim: int, index: Any) -> Tensor:
    """``out[i][j][k] = input[i][index[i][j][k]][k]`` for dim=1 (PyTorch's gather).

    ``index`` has input's rank; along the other dims it may be smaller than input.
    Gradient: scatter-added back to the gathered positions.
    """
    d = normalize_dim(dim, input.ndim, "gather")
    idx = _int_index("gather", index)
    if idx.ndim != input.ndim or any(idx.shape[a] > input.shape[a] for a in range(idx.ndim) if a != d):
        raise ValueError(f"gather: index shape {tuple(idx.shape)} does not fit input shape "
                         f"{input.shape} for dim {dim} (same rank, no larger outside dim)")
    n = input.shape[d]
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= n):
        raise IndexError(f"gather: index values must lie in [0, {n}) for dim {dim}; "
                         f"got min {int(idx.min())}, max {int(idx.max())}")
    xp = array_module(idx)
    # the other axes index themselves: an open grid of aranges that broadcasts against idx
    grid = [xp.arange(k).reshape([-1 if a == b else 1 for b in range(idx.ndim)])
            for a, k in enumerate(idx.shape)]
    grid[d] = idx
    return getitem(input, tuple(grid))


def masked_fill(input: Tensor, mask: Any, value: Any) -> Tensor:
    """``value`` where ``mask`` (bool, broadcast) is True; the gradient flows elsewhere."""
    m = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
    if m.dtype != bool:
        raise TypeError(f"masked_fill: mask must be a bool tensor, got dtype {m.dtype}")
    if not isinstance(value, Tensor):
        value = array_module(input.data).asarray(value, dtype=input.dtype)
    return E.where(Tensor(to_device(m, input.device)), value, input)
