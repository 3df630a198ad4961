"""Shape ops: they move elements around without changing them, so each backward moves the
gradient back the same way (reshape back, permute by the inverse, sum what was copied)."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from tinyvision.autograd.function import Context, Function
from tinyvision.autograd.tensor import Tensor
from tinyvision.functional._util import (int_sizes, normalize_dim, normalize_dims, real_number,
                                        tensor_list)
from tinyvision.kernels.compat import array_module


class Reshape(Function):
    @staticmethod
    def forward(ctx: Context, x, shape):
        ctx.shape = x.shape
        return x.reshape(shape)

    @staticmethod
    def backward(ctx: Context, grad):
        return grad.reshape(ctx.shape), None


class Permute(Function):
    @staticmethod
    def forward(ctx: Context, x, dims):
        ctx.inverse = tuple(np.argsort(dims))
        return x.transpose(dims)

    @staticmethod
    def backward(ctx: Context, grad):  # undo the permutation
        return grad.transpose(ctx.inverse), None


class BroadcastTo(Function):
    @staticmethod
    def forward(ctx: Context, x, shape):
        return array_module(x).broadcast_to(x, shape)

    @staticmethod
    def backward(ctx: Context, grad):  # the engine sums the copies back (sum_to)
        return grad, None


class Tile(Function):
    @staticmethod
    def forward(ctx: Context, x, reps):
        ctx.shape, ctx.reps = x.shape, reps
        return array_module(x).tile(x, reps)

    @staticmethod
    def backward(ctx: Context, grad):
        """Output axis d holds reps[d] copies of the input axis: view it as (reps, size)
        and sum the copies."""
        shape = (1,) * (len(ctx.reps) - len(ctx.shape)) + tuple(ctx.shape)
        split = [n for pair in zip(ctx.reps, shape) for n in pair]
        g = grad.reshape(split).sum(axis=tuple(range(0, len(split), 2)))
        return g.reshape(ctx.shape), None


class Flip(Function):
    @staticmethod
    def forward(ctx: Context, x, axes):
        ctx.axes = axes
        return array_module(x).flip(x, axes)

    @staticmethod
    def backward(ctx: Context, grad):
        return array_module(grad).flip(grad, ctx.axes), None


class Roll(Function):
    @staticmethod
    def forward(ctx: Context, x, shifts, axes):
        ctx.shifts, ctx.axes = shifts, axes
        return array_module(x).roll(x, shifts, axes)

    @staticmethod
    def backward(ctx: Context, grad):  # roll back by the opposite shift
        neg = tuple(-s for s in ctx.shifts) if isinstance(ctx.shifts, tuple) else -ctx.shifts
        return array_module(grad).roll(grad, neg, ctx.axes), None, None


class Cat(Function):
    @staticmethod
    def forward(ctx: Context, axis, *arrays):
        ctx.axis = axis
        ctx.bounds = np.cumsum([a.shape[axis] for a in arrays])[:-1]
        return array_module(*arrays).concatenate(arrays, axis=axis)

    @staticmethod
    def backward(ctx: Context, grad):  # each input gets its own slab of the gradient
        return (None, *array_module(grad).split(grad, ctx.bounds, axis=ctx.axis))


class ConstantPad(Function):
    @staticmethod
    def forward(ctx: Context, x, widths, value):
        ctx.crop = tuple(slice(lo, x.shape[d] + lo) for d, (lo, _) in enumerate(widths))
        return array_module(x).pad(x, widths, mode="constant", constant_values=value)

    @staticmethod
    def backward(ctx: Context, grad):  # the padding was constant: its gradient is dropped
        return grad[ctx.crop], None, None


# ------------------------------------------------------------------ public functions
def _size_args(shape: Any, op: str = "reshape", name: str = "shape") -> tuple[int, ...]:
    return int_sizes(op, name, shape)


def _infer_size(sizes: tuple[int, ...], n: int) -> tuple[int, ...] | None:
    """``sizes`` with its one -1 replaced so that the product is ``n``; None if impossible
    (also for -1 among zeros: with 0 elements any size would do, and PyTorch refuses too)."""
    known = math.prod(s for s in sizes if s != -1)
    if sizes.count(-1) == 1 and known > 0 and n % known == 0:
        sizes = tuple(n // known if s == -1 else s for s in sizes)
    return sizes if math.prod(sizes) == n and -1 not in sizes else None


def reshape(input: Tensor, shape: Sequence[int]) -> Tensor:
    """Same elements, new shape (one -1 is inferred). Gradient: reshaped back."""
    shape = _size_args(shape)
    new = _infer_size(shape, input.numel())
    if new is None:
        raise ValueError(f"reshape: cannot view a tensor of shape {input.shape} "
                         f"({input.numel()} elements) as shape {shape}")
    return Reshape.apply(input, new)


view = reshape


def flatten(input: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dims start_dim..end_dim into one: (N, C, H, W) -> (N, C*H*W) with start_dim=1."""
    if input.ndim == 0:
        return reshape(input, (1,))
    s = normalize_dim(start_dim, input.ndim, "flatten")
    e = normalize_dim(end_dim, input.ndim, "flatten")
    if s > e:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    if s == e:
        return input
    return reshape(input, input.shape[:s] + (math.prod(input.shape[s:e + 1]),) + input.shape[e + 1:])


def unflatten(input: Tensor, dim: int, sizes: Sequence[int]) -> Tensor:
    """Split one dim into ``sizes``: (N, 192) -> (N, 3, 8, 8) with dim=1, sizes=(3, 8, 8)."""
    d = normalize_dim(dim, input.ndim, "unflatten")
    new = _infer_size(_size_args(sizes, "unflatten", "sizes"), input.shape[d])  # -1 comes from this dim alone
    if new is None:
        raise ValueError(f"unflatten: sizes {tuple(sizes)} do not multiply to dim {dim}'s size {input.shape[d]}")
    return reshape(input, input.shape[:d] + new + input.shape[d + 1:])


def permute(input: Tensor, dims: Sequence[int]) -> Tensor:
    dims = _size_args(dims, "permute", "dims")
    if len(dims) != input.ndim:
        raise ValueError(f"permute: got {len(dims)} dims {dims} for a tensor of {input.ndim} dims")
    axes = tuple(normalize_dim(d, input.ndim, "permute") for d in dims)
    if len(set(axes)) != len(axes):
        raise ValueError(f"permute: dims {dims} repeat an axis")
    return Permute.apply(input, axes)


def transpose(input: Tensor, dim0: int, dim1: int) -> Tensor:
    """Swap two dims (``swapaxes``)."""
    axes = list(range(input.ndim))
    a, b = normalize_dim(dim0, input.ndim, "transpose"), normalize_dim(dim1, input.ndim, "transpose")
    if a != b:  # a 0-d tensor accepts dims 0 and -1, as PyTorch, and has nothing to swap
        axes[a], axes[b] = axes[b], axes[a]
    return Permute.apply(input, tuple(axes))


swapaxes = transpose


def movedim(input: Tensor, source: int | Sequence[int], destination: int | Sequence[int]) -> Tensor:
    """Move dims to new places, keeping the others in order: movedim(x, 1, -1) turns
    (N, C, H, W) into (N, H, W, C); movedim(x, (0, 1), (2, 0)) moves two at once."""
    src, dst = _size_args(source, "movedim", "source"), _size_args(destination, "movedim", "destination")
    if len(src) != len(dst):
        raise ValueError(f"movedim: source {source} and destination {destination} must have the same length")
    src = tuple(normalize_dim(d, input.ndim, "movedim") for d in src)
    dst = tuple(normalize_dim(d, input.ndim, "movedim") for d in dst)
    if len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise ValueError(f"movedim: source {source} and destination {destination} must not repeat a dim")
    axes = [d for d in range(input.ndim) if d not in src]
    for d, s in sorted(zip(dst, src)):  # fill the destinations left to right
        axes.insert(d, s)
    return Permute.apply(input, tuple(axes))


def squeeze(input: Tensor, dim: Any = None) -> Tensor:
    """Drop size-1 dims (all of them, or those in ``dim`` that have size 1, as PyTorch)."""
    axes = normalize_dims(dim, input.ndim, "squeeze")
    return reshape(input, tuple(n for d, n in enumerate(input.shape) if not (d in axes and n == 1)))


def unsqueeze(input: Tensor, dim: int) -> Tensor:
    """Insert a size-1 dim at ``dim`` (in range -ndim-1..ndim)."""
    d = normalize_dim(dim, input.ndim + 1, "unsqueeze")
    return reshape(input, input.shape[:d] + (1,) + input.shape[d:])


def broadcast_to(input: Tensor, shape: Sequence[int]) -> Tensor:
    shape = _size_args(shape, "broadcast_to")
    try:
        ok = np.broadcast_shapes(input.shape, shape) == shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"broadcast_to: shape {input.shape} cannot be broadcast to {shape}")
    return BroadcastTo.apply(input, shape)


def expand(input: Tensor, sizes: Sequence[int]) -> Tensor:
    """Broadcast to ``sizes``; -1 keeps that dim's size, as in PyTorch."""
    sizes = _size_args(sizes, "expand", "sizes")
    lead = len(sizes) - input.ndim
    shape = tuple(input.shape[d - lead] if s == -1 and d >= lead else s for d, s in enumerate(sizes))
    return broadcast_to(input, shape)


def tile(input: Tensor, dims: Sequence[int]) -> Tensor:
    """Repeat the whole tensor ``dims[d]`` times along each axis (``np.tile``)."""
    dims = _size_args(dims, "tile", "dims")
    reps = (1,) * (input.ndim - len(dims)) + dims
    return Tile.apply(input, reps)


def repeat(input: Tensor, repeats: Sequence[int]) -> Tensor:
    """``Tensor.repeat``: like tile, but needs at least one count per dim."""
    repeats = _size_args(repeats, "repeat", "repeats")
    if len(repeats) < input.ndim:
        raise ValueError(f"repeat: got {len(repeats)} counts {repeats} for a tensor of {input.ndim} dims")
    return Tile.apply(input, repeats)


def flip(input: Tensor, dims: Sequence[int]) -> Tensor:
    return Flip.apply(input, normalize_dims(_size_args(dims, "flip", "dims"), input.ndim, "flip"))


def roll(input: Tensor, shifts: Any, dims: Any = None) -> Tensor:
    """Shift elements cyclically; with dims=None the flattened tensor is rolled."""
    if dims is None:
        return reshape(Roll.apply(flatten(input), int(shifts), 0), input.shape)
    shifts, dims = _size_args(shifts, "roll", "shifts"), _size_args(dims, "roll", "dims")
    if len(shifts) != len(dims):
        raise ValueError(f"roll: shifts {shifts} and dims {dims} must have the same length")
    axes = tuple(normalize_dim(d, input.ndim, "roll") for d in dims)
    return Roll.apply(input, shifts, axes)


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join along ``dim``; every other dim must agree (the error lists the shapes).
    Empty 1-D tensors (shape (0,)) are skipped whatever the others' shapes, as PyTorch does."""
    tensors = tensor_list("cat", "tensors", tensors)
    for i, t in enumerate(tensors):
        if t.ndim == 0:
            raise ValueError(f"cat: tensors[{i}] is zero-dimensional and cannot be concatenated; "
                             "use stack to join scalars")
    if any(t.shape != (0,) for t in tensors):
        tensors = [t for t in tensors if t.shape != (0,)]
    axis = normalize_dim(dim, tensors[0].ndim, "cat")
    ref = tensors[0].shape
    for t in tensors[1:]:
        if t.ndim != len(ref) or any(a != b for d, (a, b) in enumerate(zip(t.shape, ref)) if d != axis):
            raise ValueError(f"cat: shapes {[x.shape for x in tensors]} differ outside dim {dim}")
    return Cat.apply(axis, *tensors)


concatenate = cat


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join along a new dim; all shapes must be equal."""
    tensors = tensor_list("stack", "tensors", tensors)
    if any(t.shape != tensors[0].shape for t in tensors):
        raise ValueError(f"stack: expects tensors of equal shape, got {[t.shape for t in tensors]}")
    d = normalize_dim(dim, tensors[0].ndim + 1, "stack")
    return cat([unsqueeze(t, d) for t in tensors], d)


def split(input: Tensor, split_size_or_sections: Any, dim: int = 0) -> list[Tensor]:
    """Pieces of size ``split_size`` (the last may be smaller) or of the listed sizes."""
    axis = normalize_dim(dim, input.ndim, "split")
    n = input.shape[axis]
    if isinstance(split_size_or_sections, (int, np.integer)):
        step = int(split_size_or_sections)
        if step <= 0:
            raise ValueError(f"split: split_size must be positive, got {step}")
        sizes = [min(step, n - s) for s in range(0, n, step)] or [0]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != n:
            raise ValueError(f"split: sections {sizes} sum to {sum(sizes)}, but dim {dim} has size {n}")
    starts = np.cumsum([0] + sizes[:-1])
    lead = (slice(None),) * axis
    return [input[lead + (slice(int(s), int(s) + k),)] for s, k in zip(starts, sizes)]


def chunk(input: Tensor, chunks: int, dim: int = 0) -> list[Tensor]:
    """``chunks`` nearly equal pieces (PyTorch's rule: size ceil(n / chunks))."""
    if chunks <= 0:
        raise ValueError(f"chunk: chunks must be positive, got {chunks}")
    n = input.shape[normalize_dim(dim, input.ndim, "chunk")]
    if n == 0:  # PyTorch gives ``chunks`` empty pieces here
        return split(input, [0] * chunks, dim)
    return split(input, math.ceil(n / chunks), dim)


def pad(input: Tensor, pad: Sequence[int], mode: str = "constant", value: float | None = 0.0) -> Tensor:
    """Pad the last dims, PyTorch's order: ``(left, right, top, bottom, front, back)``.

    mode 'constant' fills with ``value``; 'reflect' mirrors without repeating the edge
    (abc -> cb|abc|ba); 'replicate' repeats the edge (abc -> aa|abc|cc); 'circular' wraps
    around (abc -> bc|abc|ab).
    """
    pad = int_sizes("pad", "pad", pad)
    value = 0.0 if value is None else real_number("pad", "value", value)  # None means 0, as torch
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(f"pad: needs an even number of widths, at most 2 per dim; got {pad} "
                         f"for a tensor of shape {input.shape}")
    if any(p < 0 for p in pad):
        raise ValueError(f"pad: negative widths are not supported, got {pad}")
    widths = [(0, 0)] * input.ndim
    for i in range(len(pad) // 2):
        widths[input.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    if mode == "constant":
        return ConstantPad.apply(input, tuple(widths), value)
    if mode not in ("reflect", "replicate", "circular"):
        raise ValueError(f"pad: mode must be 'constant', 'reflect', 'replicate' or 'circular', got {mode!r}")
    from tinyvision.functional.indexing import index_select

    # reflect/replicate/circular = gather each padded axis through an index map, e.g. for
    # n=3, (2, 2): reflect -> [2 1 | 0 1 2 | 1 0], replicate -> [0 0 | 0 1 2 | 2 2],
    # circular -> [1 2 | 0 1 2 | 0 1]. The backward of a gather sums into the sources.
    out = input
    for d, (lo, hi) in enumerate(widths):
        if lo == hi == 0:
            continue
        n = input.shape[d]
        if mode == "reflect" and (lo >= n or hi >= n):
            raise ValueError(f"pad: reflect padding ({lo}, {hi}) must be smaller than dim {d}'s size {n}")
        if mode == "circular" and (lo > n or hi > n):  # PyTorch's rule: wrap around at most once
            raise ValueError(f"pad: circular padding ({lo}, {hi}) must be at most dim {d}'s size {n}")
        idx = np.arange(-lo, n + hi)
        if mode == "circular":
            idx = idx % n
        elif mode == "reflect":
            period = 2 * (n - 1)
            idx = np.abs(idx) % period if period else np.zeros_like(idx)
            idx = np.where(idx >= n, period - idx, idx)
        else:
            idx = np.clip(idx, 0, n - 1)
        out = index_select(out, d, Tensor(idx))
    return out


# ------------------------------------------------------------------ more views and copies
def numel(input: Tensor) -> int:
    """The number of elements."""
    return input.numel()


def t(input: Tensor) -> Tensor:
    """The transpose of a matrix; a 0-d or 1-d tensor comes back as it is."""
    if input.ndim > 2:
        raise ValueError(f"t: expects a tensor with <= 2 dims, got shape {input.shape}; use transpose or mT")
    return input if input.ndim < 2 else transpose(input, 0, 1)


def view_as(input: Tensor, other: Tensor) -> Tensor:
    return reshape(input, other.shape)


def narrow(input: Tensor, dim: int, start: int, length: int) -> Tensor:
    """Elements start .. start + length - 1 along ``dim`` (a negative start counts from the
    end). Gradient: back into that slab."""
    d = normalize_dim(dim, input.ndim, "narrow")
    n = input.shape[d]
    s = int(start) + n if int(start) < 0 else int(start)
    if not (0 <= s <= n and 0 <= int(length) <= n - s):
        raise IndexError(f"narrow: start {start} and length {length} do not fit dim {dim} of size {n} "
                         f"(need 0 <= start + length <= {n})")
    return input[(slice(None),) * d + (slice(s, s + int(length)),)]


def unbind(input: Tensor, dim: int = 0) -> tuple[Tensor, ...]:
    """The slices along ``dim``, each without that dim: (3, 4) -> three (4,) with dim=0."""
    d = normalize_dim(dim, input.ndim, "unbind")
    return tuple(input[(slice(None),) * d + (i,)] for i in range(input.shape[d]))


def repeat_interleave(input: Tensor, repeats: Any = None, dim: int | None = None, *,
                      output_size: int | None = None) -> Tensor:
    """Repeat each element ``repeats`` times along ``dim`` (the flattened input when None):
    [a, b] with repeats 2 -> [a, a, b, b]; repeats may be one count per element (a tensor).
    ``repeat_interleave(counts)`` alone gives [0]*counts[0] + [1]*counts[1] + ...
    Gradient: each copy's gradient summed back (an index_select's backward)."""
    from tinyvision.functional.indexing import index_select

    if repeats is None:  # the one-argument form: input holds the counts
        counts = input.data
        xp = array_module(counts)
        return Tensor(xp.repeat(xp.arange(counts.shape[0]), counts))
    if dim is None:
        input, d = flatten(input), 0
    else:
        d = normalize_dim(dim, input.ndim, "repeat_interleave")
    n = input.shape[d] if input.ndim else 1
    counts = repeats.data if isinstance(repeats, Tensor) else np.asarray(repeats)
    if counts.dtype.kind not in "iu" or counts.ndim > 1 or counts.size not in (1, n):
        raise ValueError(f"repeat_interleave: repeats must be an int or a 1-D integer tensor of 1 or {n} "
                         f"counts (dim {dim} has size {n}); got {repeats!r}")
    if (counts < 0).any():
        raise ValueError(f"repeat_interleave: repeats must be non-negative, got {repeats!r}")
    xp = array_module(input.data)
    index = xp.repeat(xp.arange(n), xp.asarray(counts).reshape(-1))
    if output_size is not None and index.shape[0] != output_size:
        raise ValueError(f"repeat_interleave: output_size {output_size} differs from the sum of repeats {index.shape[0]}")
    if input.ndim == 0:
        input = reshape(input, (1,))
    return index_select(input, d, Tensor(index))


def meshgrid(*tensors: Tensor, indexing: str = "ij") -> tuple[Tensor, ...]:
    """Coordinate grids from 1-D tensors of sizes n_0, n_1, ...: each output has shape
    (n_0, n_1, ...) with ``tensors[i]`` laid along dim i ('ij', matrix indexing). 'xy'
    (Cartesian) swaps the first two dims, so that x varies along columns. Gradient: each
    grid sums back onto its tensor (a broadcast's backward)."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if indexing not in ("ij", "xy"):
        raise ValueError(f"meshgrid: indexing must be 'ij' or 'xy', got {indexing!r}")
    if any(t.ndim > 1 for t in tensors):
        raise ValueError(f"meshgrid: expects 0-d or 1-d tensors, got shapes {[t.shape for t in tensors]}")
    flat = [reshape(t, (-1,)) for t in tensors]
    if indexing == "xy" and len(flat) >= 2:
        flat[0], flat[1] = flat[1], flat[0]
    shape = tuple(t.shape[0] for t in flat)
    grids = [broadcast_to(reshape(t, [-1 if i == k else 1 for k in range(len(flat))]), shape)
             for i, t in enumerate(flat)]
    if indexing == "xy" and len(grids) >= 2:  # back to the callers' order; the shape stays (n_1, n_0, ...)
        grids[0], grids[1] = grids[1], grids[0]
    return tuple(grids)
