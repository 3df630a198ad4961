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
from tinyvision.kernels import compat
from tinyvision.kernels.compat import array_module, device_of, is_array, to_device


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
            compat.scatter_add(g, ctx.index, grad)  # repeated indices accumulate
        else:
            g[ctx.index] = grad  # a view: every position is hit at most once
        return g, None


class IndexPut(Function):
    """``out = input.clone(); out[index] = values`` (what ``input[index] = values`` records),
    or ``out[index] += values`` with ``accumulate`` (repeated positions add up). Overwritten
    positions send input no gradient; values get the gradient read back at ``index`` (summed
    over what values was broadcast to)."""

    @staticmethod
    def forward(ctx: Context, x, index, values, accumulate):
        out = x.copy()
        if accumulate:
            compat.scatter_add(out, index, array_module(x).broadcast_to(values, out[index].shape))
        else:
            out[index] = values
        ctx.index, ctx.accumulate = index, accumulate
        return out

    @staticmethod
    def backward(ctx: Context, grad):
        gx = None
        if ctx.needs_input_grad[0]:
            gx = grad
            if not ctx.accumulate:
                gx = grad.copy()
                gx[ctx.index] = 0
        return gx, None, grad[ctx.index] if ctx.needs_input_grad[2] else None, None


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


def index_put(input: Tensor, indices: Any, values: Any, accumulate: bool = False) -> Tensor:
    """A copy of ``input`` with ``input[indices] = values`` (``values`` broadcast), or ``+=``
    with ``accumulate``; ``indices`` is a tuple of index tensors as in PyTorch, or any index
    expression (NumPy's rules); ``Tensor.__setitem__`` runs this. Gradient: input's passes
    except at overwritten positions; values get the gradient at ``indices``."""
    index = indices
    index = unwrap_index(index)
    index = tuple(_on_device(i, input) for i in (index if isinstance(index, tuple) else (index,)))
    if not isinstance(values, Tensor):
        values = array_module(input.data).asarray(values)
        values = values.astype(input.dtype, copy=False) if values.dtype.kind in "biuf" else values
    elif values.dtype != input.dtype:
        values = E.cast(values, input.dtype)
    return IndexPut.apply(input, index, values, accumulate)


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
    idx = _int_index("index_select", index)
    if input.ndim == 0:  # PyTorch: a 0-d tensor is one element along dim 0 (and stays 0-d)
        normalize_dim(dim, 0, "index_select")
        return index_select(input.reshape(1), 0, Tensor(idx.reshape(-1))).reshape(())
    d = normalize_dim(dim, input.ndim, "index_select")
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
    idx = _int_index("gather", index)
    if input.ndim == 0:  # PyTorch: a 0-d tensor is one element along dim 0
        normalize_dim(dim, 0, "gather")
        return gather(input.reshape(1), 0, Tensor(idx.reshape(-1))).reshape(idx.shape)
    d = normalize_dim(dim, input.ndim, "gather")
    if idx.ndim != input.ndim or any(idx.shape[a] > input.shape[a] for a in range(idx.ndim) if a != d):
        raise ValueError(f"gather: index shape {tuple(idx.shape)} does not fit input shape "
                         f"{input.shape} for dim {dim} (same rank, no larger outside dim)")
    _check_range("gather", idx, input.shape[d], dim)
    return getitem(input, _along(idx, d))


def _check_range(op: str, idx: Any, n: int, dim: int) -> None:
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= n):
        raise IndexError(f"{op}: index values must lie in [0, {n}) for dim {dim} of size {n}; "
                         f"got min {int(idx.min())}, max {int(idx.max())}")


def _along(idx: Any, d: int) -> tuple:
    """The NumPy index that pairs ``idx`` with dim ``d`` as gather/scatter do: position p of
    idx addresses [p_0, ..., idx[p], ..., p_last]. The other axes index themselves, through an
    open grid of aranges that broadcasts against idx."""
    xp = array_module(idx)
    grid = [xp.arange(k).reshape([-1 if a == b else 1 for b in range(idx.ndim)])
            for a, k in enumerate(idx.shape)]
    grid[d] = idx
    return tuple(grid)


# ------------------------------------------------------------------ the scatter family
class Scatter(Function):
    """out = input with ``src`` (the part of it that index covers) written or added at the
    positions ``_along(index, dim)``; with reduce='multiply' multiplied there.

    Gradient: input gets it except where a plain scatter overwrote it; src gets the gradient
    gathered back from where each of its elements went (zero where index does not reach).
    """

    @staticmethod
    def forward(ctx: Context, x, src, where, reduce):
        xp = array_module(x)
        shape = np.broadcast_shapes(*[w.shape for w in where])  # index's shape
        part = src[tuple(slice(0, n) for n in shape)] if is_array(src) and src.ndim else src
        part = xp.broadcast_to(xp.asarray(part, dtype=x.dtype), shape)
        out = x.copy()
        if reduce is None:
            out[where] = part
        elif reduce == "add":
            compat.scatter_add(out, where, part)
        else:  # multiply: repeated positions multiply in turn (CuPy has no multiply.at)
            host = to_device(out, "cpu")
            np.multiply.at(host, tuple(to_device(w, "cpu") for w in where), to_device(part, "cpu"))
            out = to_device(host, device_of(x))
        ctx.where, ctx.reduce, ctx.src_shape = where, reduce, getattr(src, "shape", ())
        return out

    @staticmethod
    def backward(ctx: Context, grad):
        if ctx.reduce == "multiply":
            raise RuntimeError("the derivative for scatter with reduce='multiply' is not implemented "
                               "(as in PyTorch); use scatter_add or index_add for a gradient")
        xp = array_module(grad)
        gx = gsrc = None
        if ctx.needs_input_grad[0]:
            gx = grad
            if ctx.reduce is None:
                gx = grad.copy()
                gx[ctx.where] = 0
        if ctx.needs_input_grad[1]:
            gsrc = xp.zeros(ctx.src_shape, dtype=grad.dtype)
            gsrc[tuple(slice(0, n) for n in grad[ctx.where].shape)] = grad[ctx.where]
        return gx, gsrc, None, None


def _scatter_index(op: str, input: Tensor, dim: int, index: Any, src: Any) -> tuple:
    d = normalize_dim(dim, input.ndim, op)
    idx = _int_index(op, index)
    src_shape = tuple(src.shape) if isinstance(src, Tensor) else None
    if input.ndim == 0:  # PyTorch treats a 0-d tensor as one element along dim 0
        idx = idx.reshape(-1)
    elif idx.ndim != input.ndim or any(idx.shape[a] > input.shape[a] for a in range(idx.ndim) if a != d) or (
            src_shape is not None and (len(src_shape) != idx.ndim or any(i > s for i, s in zip(idx.shape, src_shape)))):
        raise ValueError(f"{op}: index of shape {tuple(idx.shape)} does not fit input {input.shape}"
                         f"{'' if src_shape is None else f' and src {src_shape}'} for dim {dim}: same rank, "
                         "no larger than src anywhere, nor than input outside dim")
    _check_range(op, idx, input.shape[d] if input.ndim else 1, dim)
    return d, to_device(idx, input.device)


def scatter(input: Tensor, dim: int, index: Any, src: Any = None, *, value: Any = None,
            reduce: str | None = None) -> Tensor:
    """A copy of input with ``out[..., index[p], ...] = src[p]`` along ``dim`` (the other
    coordinates are p's own), or ``value`` everywhere index points. ``reduce='add'`` or
    ``'multiply'`` combines instead of overwriting (forward only, as in PyTorch).
    Shapes: index has input's rank, no larger than src, nor than input outside ``dim``."""
    if (src is None) == (value is None):
        raise TypeError("scatter: give exactly one of src (a tensor) and value (a number)")
    if reduce not in (None, "add", "multiply"):
        raise ValueError(f"scatter: reduce must be None, 'add' or 'multiply', got {reduce!r}")
    d, idx = _scatter_index("scatter", input, dim, index, src)
    source = src if src is not None else value
    if input.ndim == 0:
        return scatter(input.reshape(1), 0, Tensor(idx), src if src is None or src.ndim else src.reshape(1),
                       value=value, reduce=reduce).reshape(())
    return Scatter.apply(input, source, _along(idx, d), reduce)


def scatter_add(input: Tensor, dim: int, index: Any, src: Tensor) -> Tensor:
    """A copy of input with ``src[p]`` added at ``[..., index[p], ...]`` along ``dim``;
    repeated positions add up. Gradient: input's passes through; src's is gathered."""
    d, idx = _scatter_index("scatter_add", input, dim, index, src)
    if input.ndim == 0:
        return scatter_add(input.reshape(1), 0, Tensor(idx), src.reshape(-1)).reshape(())
    return Scatter.apply(input, src, _along(idx, d), "add")


def index_add(input: Tensor, dim: int, index: Any, source: Tensor, *, alpha: Any = 1) -> Tensor:
    """A copy of input with ``alpha * source[..., i, ...]`` added to slice ``index[i]`` along
    ``dim``; source has input's shape with ``len(index)`` along dim."""
    if input.ndim == 0:
        raise ValueError("index_add: input must have at least 1 dim, got a 0-d tensor")
    d = normalize_dim(dim, input.ndim, "index_add")
    idx = _int_index("index_add", index)
    if idx.ndim != 1:
        raise ValueError(f"index_add: index must be 1-D, got shape {tuple(idx.shape)}")
    want = input.shape[:d] + (idx.shape[0],) + input.shape[d + 1:]
    if source.shape != want:
        raise ValueError(f"index_add: source of shape {source.shape} must have input's shape {input.shape} "
                         f"with dim {dim} of size len(index) = {idx.shape[0]}, i.e. {want}")
    _check_range("index_add", idx, input.shape[d], dim)
    # every source element goes to the slice its index entry names: a scatter_add whose index
    # repeats idx along every other dim
    idx = to_device(idx, input.device).reshape([-1 if a == d else 1 for a in range(input.ndim)])
    full = array_module(idx).broadcast_to(idx, source.shape)
    src = source if alpha == 1 else source * alpha
    return Scatter.apply(input, src, _along(full, d), "add")


class MaskedScatter(Function):
    """Where mask is True (row-major order), take the next element of source."""

    @staticmethod
    def forward(ctx: Context, x, mask, source):
        xp = array_module(x)
        mask = xp.broadcast_to(mask, x.shape)
        k = int(mask.sum())
        if k > source.size:
            raise ValueError(f"masked_scatter: mask selects {k} elements but source of shape "
                             f"{tuple(source.shape)} has only {source.size}")
        out = x.copy()
        out[mask] = source.reshape(-1)[:k]
        ctx.mask, ctx.k, ctx.source_shape = mask, k, source.shape
        return out

    @staticmethod
    def backward(ctx: Context, grad):
        xp = array_module(grad)
        gsrc = xp.zeros(int(np.prod(ctx.source_shape)), dtype=grad.dtype)
        gsrc[:ctx.k] = grad[ctx.mask]
        return grad * ~ctx.mask, None, gsrc.reshape(ctx.source_shape)


def masked_scatter(input: Tensor, mask: Any, source: Tensor) -> Tensor:
    """A copy of input whose positions where ``mask`` (bool, broadcast to input) is True take
    source's elements in order. Gradient: input's where mask is False; source's for the
    elements used."""
    m = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
    if m.dtype != bool:
        raise TypeError(f"masked_scatter: mask must be a bool tensor, got dtype {m.dtype}")
    try:
        np.broadcast_shapes(m.shape, input.shape)
    except ValueError:
        raise ValueError(f"masked_scatter: mask of shape {tuple(m.shape)} does not broadcast to input "
                         f"of shape {input.shape}") from None
    if source.dtype != input.dtype:
        raise TypeError(f"masked_scatter: source dtype {source.dtype} must match input dtype {input.dtype}")
    return MaskedScatter.apply(input, to_device(m, input.device), source)


def masked_fill(input: Tensor, mask: Any, value: Any) -> Tensor:
    """``value`` where ``mask`` (bool, broadcast) is True; the gradient flows elsewhere."""
    m = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
    if m.dtype != bool:
        raise TypeError(f"masked_fill: mask must be a bool tensor, got dtype {m.dtype}")
    if not isinstance(value, Tensor):
        value = array_module(input.data).asarray(value, dtype=input.dtype)
    return E.where(Tensor(to_device(m, input.device)), value, input)
