"""Shape ops (tinyvision/functional/shape.py) against PyTorch and finite differences.

Every op is run by Hypothesis on generated shapes (size-0 and size-1 axes included) and dims
(negative included), then checked three ways: forward and backward against torch in float32
and in float64 (tests/helpers.check_against_torch), and ``tv.gradcheck`` in float64.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from hypothesis import given

import tinyvision as tv
from tests import helpers


def data(shape: Sequence[int], seed: int = 0) -> np.ndarray:
    """Distinct float64 values, so that any misplaced element shows."""
    return np.random.default_rng(seed).standard_normal(tuple(shape))


def check_op(ours: Callable, theirs: Callable, *arrays: np.ndarray) -> None:
    """helpers.check_op, with the arrays as separate arguments."""
    helpers.check_op(ours, theirs, arrays)

def joined(pieces: Sequence) -> tv.Tensor | torch.Tensor:
    """One tensor holding every piece of a split/chunk, in order (so one check covers them)."""
    if isinstance(pieces[0], torch.Tensor):
        return torch.cat([p.reshape(-1) for p in pieces])
    return tv.cat([p.reshape(-1) for p in pieces])


def piece_shapes(pieces: Sequence) -> list[tuple[int, ...]]:
    return [tuple(p.shape) for p in pieces]


shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=3)
shapes_1d = hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=3)


def a_dim(draw, ndim: int) -> int:
    """A valid dim for ``ndim`` dims, negative half of the time (0-d tensors accept 0, -1)."""
    n = max(ndim, 1)
    return draw(st.integers(-n, n - 1))


def some_dims(draw, ndim: int, min_size: int = 0) -> tuple[int, ...]:
    """Distinct dims, each written positive or negative."""
    dims = draw(st.lists(st.integers(0, ndim - 1), min_size=min_size, max_size=ndim, unique=True))
    return tuple(d - ndim if draw(st.booleans()) else d for d in dims)


# ------------------------------------------------------------------ reshape family
@st.composite
def reshape_cases(draw):
    """A shape and a target with the same number of elements: the dims shuffled, size-1 dims
    added, neighbours merged, and one of them written -1."""
    shape = draw(shapes)
    dims = draw(st.permutations(list(shape) + [1] * draw(st.integers(0, 2))))
    target: list[int] = []
    for n in dims:
        if target and draw(st.booleans()):
            target[-1] *= n
        else:
            target.append(n)
    if math.prod(shape) > 0 and target and draw(st.booleans()):
        target[draw(st.integers(0, len(target) - 1))] = -1
    return shape, tuple(target)


@pytest.mark.parametrize("method", ["reshape", "view"])
@given(case=reshape_cases())
def test_reshape_and_view(method, case):
    shape, target = case
    check_op(lambda x: getattr(x, method)(target), lambda x: getattr(x, method)(target), data(shape))


@given(data_=st.data(), shape=shapes)
def test_flatten(data_, shape):
    nd = max(len(shape), 1)
    start, end = sorted(data_.draw(st.lists(st.integers(0, nd - 1), min_size=2, max_size=2)))
    start -= nd * data_.draw(st.integers(0, 1))  # the same dims, maybe written negative
    end -= nd * data_.draw(st.integers(0, 1))
    check_op(lambda x: x.flatten(start, end), lambda x: x.flatten(start, end), data(shape))


@given(data_=st.data(), shape=shapes_1d)
def test_unflatten(data_, shape):
    dim = a_dim(data_.draw, len(shape))
    n = shape[dim]
    k = data_.draw(st.sampled_from([d for d in range(1, n + 1) if n % d == 0] or [1]))
    sizes = [k, n // k]
    if n and data_.draw(st.booleans()):
        sizes[data_.draw(st.integers(0, 1))] = -1
    check_op(lambda x: x.unflatten(dim, sizes), lambda x: x.unflatten(dim, sizes), data(shape))


@given(data_=st.data(), shape=shapes)
def test_squeeze(data_, shape):
    choice = data_.draw(st.sampled_from(["none", "int", "tuple"]))
    if choice == "none" or not shape:
        dim = None
    elif choice == "int":
        dim = a_dim(data_.draw, len(shape))
    else:
        dim = some_dims(data_.draw, len(shape))
    check_op(lambda x: x.squeeze(dim), lambda x: x.squeeze() if dim is None else x.squeeze(dim),
             data(shape))


@given(data_=st.data(), shape=shapes)
def test_unsqueeze(data_, shape):
    dim = data_.draw(st.integers(-len(shape) - 1, len(shape)))
    check_op(lambda x: x.unsqueeze(dim), lambda x: x.unsqueeze(dim), data(shape))


# ------------------------------------------------------------------ axis order
@given(data_=st.data(), shape=shapes)
def test_permute(data_, shape):
    nd = len(shape)
    dims = tuple(d - nd * data_.draw(st.integers(0, 1)) for d in data_.draw(st.permutations(range(nd))))
    check_op(lambda x: x.permute(dims), lambda x: x.permute(dims), data(shape))


@pytest.mark.parametrize("name", ["transpose", "swapaxes"])
@given(data_=st.data(), shape=shapes)
def test_transpose_and_swapaxes(name, data_, shape):
    d0, d1 = a_dim(data_.draw, len(shape)), a_dim(data_.draw, len(shape))
    check_op(lambda x: getattr(tv, name)(x, d0, d1), lambda x: getattr(torch, name)(x, d0, d1),
             data(shape))


@given(data_=st.data(), shape=shapes_1d)
def test_movedim(data_, shape):
    nd = len(shape)
    k = data_.draw(st.integers(1, nd))
    src = data_.draw(st.permutations(range(nd)))[:k]
    dst = tuple(d - nd * data_.draw(st.integers(0, 1)) for d in data_.draw(st.permutations(range(nd)))[:k])
    if k == 1 and data_.draw(st.booleans()):  # the single-int form
        src, dst = src[0], dst[0]
    check_op(lambda x: x.movedim(src, dst), lambda x: x.movedim(src, dst), data(shape))


# ------------------------------------------------------------------ broadcasting copies
@st.composite
def broadcast_cases(draw, allow_minus_one: bool):
    """A shape and a larger shape it broadcasts to: new leading dims, size-1 dims stretched
    (to 0 too); with ``allow_minus_one`` (expand) existing dims may be written -1."""
    shape = draw(shapes)
    target = draw(st.lists(st.integers(0, 3), max_size=2))
    for n in shape:
        keep = [n, -1] if allow_minus_one else [n]
        target.append(draw(st.sampled_from(keep + ([0, 2, 3] if n == 1 else []))))
    return shape, tuple(target)


@given(case=broadcast_cases(allow_minus_one=True))
def test_expand(case):
    shape, target = case
    check_op(lambda x: x.expand(target), lambda x: x.expand(target), data(shape))


@given(case=broadcast_cases(allow_minus_one=False))
def test_broadcast_to(case):
    shape, target = case
    check_op(lambda x: tv.broadcast_to(x, target), lambda x: torch.broadcast_to(x, target), data(shape))


@given(data_=st.data(), shape=shapes, n=st.integers(1, 3))
def test_repeat(data_, shape, n):
    reps = data_.draw(st.lists(st.integers(0, 2), min_size=len(shape), max_size=len(shape) + 2))
    if not reps:  # a 0-d tensor still needs a count
        reps = [n]
    check_op(lambda x: x.repeat(*reps), lambda x: x.repeat(*reps), data(shape))


@given(data_=st.data(), shape=shapes)
def test_tile(data_, shape):
    reps = tuple(data_.draw(st.lists(st.integers(0, 2), min_size=1, max_size=len(shape) + 1)))
    check_op(lambda x: tv.tile(x, reps), lambda x: torch.tile(x, reps), data(shape))


# ------------------------------------------------------------------ joining and splitting
@given(data_=st.data(), shape=shapes_1d, k=st.integers(1, 3))
def test_cat(data_, shape, k):
    dim = a_dim(data_.draw, len(shape))
    sizes = data_.draw(st.lists(st.integers(0, 3), min_size=k, max_size=k))
    arrays = [data(shape[:dim % len(shape)] + (m,) + shape[dim % len(shape) + 1:], seed=i)
              for i, m in enumerate(sizes)]
    check_op(lambda *xs: tv.cat(xs, dim), lambda *xs: torch.cat(xs, dim), *arrays)


@given(data_=st.data(), shape=shapes, k=st.integers(1, 3))
def test_stack(data_, shape, k):
    dim = data_.draw(st.integers(-len(shape) - 1, len(shape)))
    arrays = [data(shape, seed=i) for i in range(k)]
    check_op(lambda *xs: tv.stack(xs, dim), lambda *xs: torch.stack(xs, dim), *arrays)


def check_pieces(ours: Callable, theirs: Callable, shape: tuple[int, ...]) -> None:
    """split/chunk: the same piece shapes as torch, then every piece's values and gradients."""
    x = data(shape)
    assert piece_shapes(ours(tv.tensor(x))) == piece_shapes(theirs(torch.tensor(x)))
    check_op(lambda t: joined(ours(t)), lambda t: joined(theirs(t)), x)


@given(data_=st.data(), shape=shapes_1d)
def test_split(data_, shape):
    dim = a_dim(data_.draw, len(shape))
    n = shape[dim]
    if data_.draw(st.booleans()):
        arg = data_.draw(st.integers(1, 4))
    else:  # sections: cut points in 0..n
        cuts = sorted(data_.draw(st.lists(st.integers(0, n), max_size=3)))
        arg = [b - a for a, b in zip([0] + cuts, cuts + [n])]
    check_pieces(lambda x: x.split(arg, dim), lambda x: x.split(arg, dim), shape)


@given(data_=st.data(), shape=shapes_1d, chunks=st.integers(1, 4))
def test_chunk(data_, shape, chunks):
    dim = a_dim(data_.draw, len(shape))
    check_pieces(lambda x: x.chunk(chunks, dim), lambda x: x.chunk(chunks, dim), shape)


# ------------------------------------------------------------------ reordering elements
@given(data_=st.data(), shape=shapes_1d)
def test_flip(data_, shape):
    dims = some_dims(data_.draw, len(shape), min_size=1)
    check_op(lambda x: x.flip(dims), lambda x: x.flip(dims), data(shape))


@given(data_=st.data(), shape=shapes_1d)
def test_roll(data_, shape):
    if data_.draw(st.booleans()):  # dims=None: the flattened tensor rolls
        shifts, dims = data_.draw(st.integers(-5, 5)), None
    else:
        dims = some_dims(data_.draw, len(shape), min_size=1)
        shifts = tuple(data_.draw(st.lists(st.integers(-5, 5), min_size=len(dims), max_size=len(dims))))
    check_op(lambda x: x.roll(shifts, dims), lambda x: torch.roll(x, shifts, dims), data(shape))


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("spatial", [1, 2, 3])
@given(data_=st.data())
def test_pad(mode, spatial, data_):
    """1-, 2- and 3-D padding; torch wants (C, *spatial) or (N, C, *spatial) inputs for
    reflect/replicate, so the input has spatial + 1 or + 2 dims."""
    lead = data_.draw(st.lists(st.integers(1, 2), min_size=1, max_size=2))
    # reflect needs each width < the dim's size, circular <= the size; replicate a non-empty
    # dim; constant takes 0
    sizes = data_.draw(st.lists(st.integers(0 if mode == "constant" else 1, 3),
                                min_size=spatial, max_size=spatial))
    widths = []
    for n in reversed(sizes):  # PyTorch order: last dim first, (left, right) each
        top = {"reflect": n - 1, "circular": n}.get(mode, 3)
        widths += data_.draw(st.lists(st.integers(0, top), min_size=2, max_size=2))
    value = data_.draw(st.sampled_from([0.0, 1.5])) if mode == "constant" else 0.0
    x = data(tuple(lead) + tuple(sizes))
    check_op(lambda t: tv.pad(t, widths, mode=mode, value=value),
             lambda t: torch.nn.functional.pad(t, widths, mode=mode, value=value if mode == "constant" else None),
             x)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("call, match", [
    (lambda x: x.reshape(4, 2), r"shape \(2, 3\).*\(4, 2\)"),
    (lambda x: x.reshape(-1, -1), r"as shape \(-1, -1\)"),
    (lambda x: x.permute(0, 0), r"repeat an axis"),
    (lambda x: x.permute(0), r"1 dims \(0,\) for a tensor of 2 dims"),
    (lambda x: x.transpose(0, 2), r"dim 2 is out of range for a tensor of 2 dims"),
    (lambda x: tv.cat([x, tv.zeros(3, 3)], 1), r"\[\(2, 3\), \(3, 3\)\] differ outside dim 1"),
    (lambda x: tv.stack([x, tv.zeros(3, 2)]), r"equal shape"),
    (lambda x: x.split([1, 1], 1), r"sum to 2, but dim 1 has size 3"),
    (lambda x: x.expand(4, 3), r"\(2, 3\) cannot be broadcast to \(4, 3\)"),
    (lambda x: tv.pad(x, (3, 0), mode="reflect"), r"smaller than dim 1's size 3"),
    (lambda x: tv.pad(x, (1, 1), mode="wrap"), r"mode must be"),
    (lambda x: tv.pad(x, (0, 4), mode="circular"), r"at most dim 1's size 3"),
    (lambda x: x.movedim((0, 1), 0), r"same length"),
    (lambda x: x.unflatten(1, (2, -1)), r"sizes \(2, -1\) do not multiply to dim 1's size 3"),
])
def test_bad_input_is_named(call, match):
    with pytest.raises((ValueError, IndexError), match=match):
        call(tv.zeros(2, 3))


# ------------------------------------------------------------------ t, narrow, unbind, view_as
@pytest.mark.parametrize("shape", [(), (3,), (2, 3), (0, 4)])
def test_t(shape):
    check_op(lambda x: x.t(), lambda x: x.t(), data(shape))
    check_op(tv.t, torch.t, data(shape))


@pytest.mark.parametrize("dim, start, length", [(0, 0, 2), (1, 1, 2), (-1, -3, 3), (1, 4, 0)])
def test_narrow(dim, start, length):
    check_op(lambda x: tv.narrow(x, dim, start, length), lambda x: torch.narrow(x, dim, start, length), data((3, 4)))
    check_op(lambda x: x.narrow(dim, start, length), lambda x: x.narrow(dim, start, length), data((3, 4)))


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_unbind_and_view_as(dim):
    check_op(lambda x: joined(tv.unbind(x, dim)), lambda x: joined(torch.unbind(x, dim)), data((2, 3, 2)))
    check_op(lambda x: joined(x.unbind(dim)), lambda x: joined(x.unbind(dim)), data((2, 3, 2)))
    check_op(lambda x, y: x.view_as(y) * y, lambda x, y: x.view_as(y) * y, data((6,)), data((2, 3)))


# ------------------------------------------------------------------ repeat_interleave, meshgrid
@given(shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3), seed=st.integers(0, 2**32 - 1),
       data_=st.data())
def test_repeat_interleave(shape, seed, data_):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    dim = data_.draw(st.sampled_from([None] + list(range(-len(shape), len(shape)))))
    n = x.size if dim is None else shape[dim]
    repeats = data_.draw(st.sampled_from(["int", "one", "each"]))
    if repeats == "int":
        r = int(rng.integers(0, 3))
        check_op(lambda t: tv.repeat_interleave(t, r, dim), lambda t: torch.repeat_interleave(t, r, dim), x)
    else:
        counts = rng.integers(0, 3, 1 if repeats == "one" else n)
        check_op(lambda t: t.repeat_interleave(tv.tensor(counts), dim),
                 lambda t: t.repeat_interleave(torch.tensor(counts), dim), x)


def test_repeat_interleave_of_counts_alone():
    counts = [2, 0, 3]
    np.testing.assert_array_equal(tv.repeat_interleave(tv.tensor(counts)).numpy(),
                                  torch.repeat_interleave(torch.tensor(counts)).numpy())


@pytest.mark.parametrize("indexing", ["ij", "xy"])
@pytest.mark.parametrize("sizes", [(3,), (3, 2), (2, 4, 3), ((), 2)])
def test_meshgrid(indexing, sizes):
    arrays = [data(s if isinstance(s, tuple) else (s,), seed=i) for i, s in enumerate(sizes)]

    def stacked(lib):
        def run(*xs):
            grids = lib.meshgrid(*xs, indexing=indexing)
            return lib.stack([g * (i + 1) for i, g in enumerate(grids)])
        return run
    check_op(stacked(tv), stacked(torch), *arrays)


def test_type_as_tensor_is_tensor_numel():
    x = tv.ones(2, 3)
    assert x.type() == "tinyvision.FloatTensor" and torch.ones(2).type() == "torch.FloatTensor"
    assert x.type(np.float64).dtype == np.float64 and x.type("torch.LongTensor").dtype == np.int64
    assert x.double().type() == "tinyvision.DoubleTensor" and x.long().type() == "tinyvision.LongTensor"
    with pytest.raises(ValueError, match="type: unknown tensor type 'torch.FooTensor'"):
        x.type("torch.FooTensor")
    a = np.arange(4.0)
    shared = tv.as_tensor(a)
    a[0] = 7.0
    assert shared[0].item() == 7.0 and tv.as_tensor(shared) is shared  # no copies
    assert tv.as_tensor(a, dtype=np.float32).dtype == np.float32 and tv.as_tensor([1, 2]).dtype == np.int64
    assert tv.is_tensor(x) and not tv.is_tensor(a)
    assert tv.numel(x) == torch.numel(torch.ones(2, 3)) == 6


SHAPE_BAD = [
    (lambda: tv.t(tv.ones(2, 3, 4)), ValueError, r"t: expects a tensor with <= 2 dims, got shape \(2, 3, 4\)"),
    (lambda: tv.narrow(tv.ones(3, 4), 1, 2, 3), IndexError, r"narrow: start 2 and length 3 do not fit dim 1 of size 4"),
    (lambda: tv.repeat_interleave(tv.ones(3), tv.tensor([1, 2])), ValueError, r"repeats must be an int or a 1-D integer tensor of 1 or 3"),
    (lambda: tv.repeat_interleave(tv.ones(3), -1), ValueError, r"repeats must be non-negative"),
    (lambda: tv.meshgrid(tv.ones(2), indexing="yx"), ValueError, r"indexing must be 'ij' or 'xy', got 'yx'"),
    (lambda: tv.meshgrid(tv.ones(2, 2)), ValueError, r"meshgrid: expects 0-d or 1-d tensors"),
    (lambda: tv.unbind(tv.ones(2), 1), IndexError, r"unbind: dim 1 is out of range"),
]


@pytest.mark.parametrize("call, error, message", SHAPE_BAD)
def test_new_shape_ops_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat_skips_empty_one_d_tensors_as_pytorch(dim):
    empty = np.zeros(0)
    check_op(lambda a, e, b: tv.cat([e, a, e, b], dim), lambda a, e, b: torch.cat([e, a, e, b], dim),
             data((2, 3)), empty, data((2, 3), seed=1))
    assert tv.cat([tv.ones(0), tv.ones(0)]).shape == (0,)
