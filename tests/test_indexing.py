"""Indexing (tinyvision/functional/indexing.py) against PyTorch and finite differences.

Hypothesis writes the index expressions: ints, slices with any step (PyTorch has no negative
steps, so its side flips the axis and uses the mirrored positive slice), None, ...,
integer arrays with repeats (their gradients must add up), boolean masks, and mixes of them.
"""
from __future__ import annotations

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from hypothesis import given

import tinyvision as tv
from tests.test_shape import check_op, data

shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=4)


def basic_entry(draw, n: int):
    """An index for one axis of size n: an int, a slice (negative steps too) or ':'.
    Returns (ours, torch's, flip): PyTorch gets the mirrored slice of the flipped axis."""
    kind = draw(st.sampled_from(["int", "slice", "full"] if n else ["slice", "full"]))
    if kind == "int":
        i = draw(st.integers(-n, n - 1))
        return i, i, False
    if kind == "full":
        return slice(None), slice(None), False
    bound = st.none() | st.integers(-n - 1, n + 1)
    s = slice(draw(bound), draw(bound), draw(st.none() | st.integers(-3, 3).filter(bool)))
    if (s.step or 1) > 0:
        return s, s, False
    start, stop, step = s.indices(n)  # visits start, start+step, ... > stop; in flipped
    return s, slice(n - 1 - start, n - 1 - stop, -step), True  # coordinates i -> n-1-i


def int_array(draw, n: int, shape: tuple[int, ...]) -> np.ndarray:
    """Integer indices into an axis of size n, negative ones and repeats included."""
    if n == 0:
        shape = shape[:-1] + (0,) if shape else (0,)
    return np.asarray(draw(hnp.arrays(np.int64, shape, elements=st.integers(-n, max(n - 1, -n)))))


@st.composite
def index_cases(draw):
    """(shape, our index, torch's index, axes torch flips first)."""
    shape = draw(shapes)
    kind = draw(st.sampled_from(["basic", "array", "two arrays", "mask"]))
    ours, theirs, flips = [], [], []
    start = draw(st.integers(0, len(shape) - 1))  # where the array / mask goes
    d = 0
    while d < len(shape):
        if d == start and kind == "array":
            a = int_array(draw, shape[d], draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=4)))
            ours.append(a), theirs.append(torch.from_numpy(a))
            d += 1
        elif d == start and kind == "two arrays" and d + 1 < len(shape):
            ishape = draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=3))
            if 0 in shape[d:d + 2]:  # an empty axis takes only empty index arrays
                ishape = ishape[:-1] + (0,)
            for k in (d, d + 1):  # the two arrays broadcast together
                a = int_array(draw, shape[k], ishape)
                ours.append(a), theirs.append(torch.from_numpy(a))
            d += 2
        elif d == start and kind == "mask":
            k = draw(st.integers(1, len(shape) - d))
            m = np.asarray(draw(hnp.arrays(bool, shape[d:d + k])))
            ours.append(m), theirs.append(torch.from_numpy(m))
            d += k
        else:
            o, t, flip = basic_entry(draw, shape[d])
            ours.append(o), theirs.append(t)
            if flip:
                flips.append(d)
            d += 1
    # an Ellipsis for a run of ':' (maybe empty), trailing ':' dropped, then some None
    full = [i for i, e in enumerate(ours) if isinstance(e, slice) and e == slice(None)]
    if draw(st.booleans()):
        i = draw(st.integers(0, len(ours)))
        j = i
        while j in full:
            j += 1
        j = draw(st.integers(i, j))
        ours[i:j], theirs[i:j] = [Ellipsis], [Ellipsis]
    else:
        while ours and isinstance(ours[-1], slice) and ours[-1] == slice(None) and draw(st.booleans()):
            ours.pop(), theirs.pop()
    for _ in range(draw(st.integers(0, 2))):
        i = draw(st.integers(0, len(ours)))
        ours.insert(i, None), theirs.insert(i, None)
    return shape, tuple(ours), tuple(theirs), tuple(flips)


@given(case=index_cases())
def test_getitem(case):
    shape, ours, theirs, flips = case
    check_op(lambda x: x[ours], lambda x: (x.flip(flips) if flips else x)[theirs], data(shape))


@pytest.mark.parametrize("index", [
    (0, slice(None), [1, 2]),                  # NumPy: (2, 3, 5); PyTorch: (3, 2, 5)
    (slice(None), 0, slice(None), [1, 0, 1]),  # NumPy: (3, 2, 4); PyTorch: (2, 4, 3)
    (slice(None), slice(None), [1], Ellipsis, [0, 2]),  # ... for no dim: NumPy moves the arrays first
    (1, Ellipsis, np.array([True, False, True, True, False])),
])
def test_where_pytorch_and_numpy_disagree_we_follow_pytorch(index):
    theirs = tuple(torch.tensor(i) if isinstance(i, (list, np.ndarray)) else i for i in index)
    check_op(lambda x: x[index], lambda x: x[theirs], data((2, 3, 4, 5)))


@pytest.mark.parametrize("index", [[0, 0, 2, 0], np.array([[1, 1], [0, 1]]), (slice(None), [2, 2])])
def test_repeated_indices_accumulate(index):
    """x[[0, 0, 2, 0]].sum(): row 0 is used three times, so its gradient is 3, not 1."""
    x = tv.ones(3, 3, dtype=tv.float64, requires_grad=True)
    t = torch.ones(3, 3, dtype=torch.float64, requires_grad=True)
    x[index].sum().backward()
    t[index if not isinstance(index, np.ndarray) else torch.from_numpy(index)].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), t.grad.numpy())
    assert x.grad.numpy().max() > 1


def test_zero_dim_tensor():
    check_op(lambda x: x[None, ...], lambda x: x[None, ...], data(()))
    check_op(lambda x: x[...], lambda x: x[...], data(()))


def test_tensor_indices():
    """Index Tensors (int and bool) act like the arrays they hold."""
    x = data((3, 4))
    i, m = tv.tensor([2, 0, 2]), tv.tensor([True, False, True])
    check_op(lambda t: t[i, 1:], lambda t: t[torch.tensor([2, 0, 2]), 1:], x)
    check_op(lambda t: t[m], lambda t: t[torch.tensor([True, False, True])], x)


# ------------------------------------------------------------------ gather, index_select, masked_fill
@given(data_=st.data(), shape=shapes)
def test_gather(data_, shape):
    nd = len(shape)
    dim = data_.draw(st.integers(-nd, nd - 1))
    d = dim % nd
    ishape = tuple(data_.draw(st.integers(0, 3 if k == d else n)) for k, n in enumerate(shape))
    if shape[d] == 0:  # nothing to pick from: the index must be empty along dim
        ishape = ishape[:d] + (0,) + ishape[d + 1:]
    idx = np.asarray(data_.draw(hnp.arrays(np.int64, ishape, elements=st.integers(0, max(shape[d] - 1, 0)))))
    check_op(lambda x: x.gather(dim, tv.tensor(idx)), lambda x: x.gather(dim, torch.from_numpy(idx)),
             data(shape))


@given(data_=st.data(), shape=shapes)
def test_index_select(data_, shape):
    nd = len(shape)
    dim = data_.draw(st.integers(-nd, nd - 1))
    n = shape[dim]
    idx = np.asarray(data_.draw(hnp.arrays(np.int64, (data_.draw(st.integers(0, 5)) if n else 0,),
                                           elements=st.integers(0, max(n - 1, 0)))))
    check_op(lambda x: tv.index_select(x, dim, tv.tensor(idx)),
             lambda x: torch.index_select(x, dim, torch.from_numpy(idx)), data(shape))


@given(data_=st.data(), shape=shapes, value=st.sampled_from([0.0, -2.5, float("-inf")]))
def test_masked_fill(data_, shape, value):
    """The mask broadcasts: some dims are 1 and leading dims may be missing."""
    mshape = tuple(n if data_.draw(st.booleans()) else 1 for n in shape)[data_.draw(st.integers(0, len(shape))):]
    mask = np.asarray(data_.draw(hnp.arrays(bool, mshape)))
    ours = lambda x: x.masked_fill(tv.tensor(mask), value)  # noqa: E731
    theirs = lambda x: x.masked_fill(torch.from_numpy(mask), value)  # noqa: E731
    if np.isinf(value):  # finite differences of inf are nan: compare with torch only, and the
        x = data(shape)   # gradient (0 where filled) through a finite-valued op
        np.testing.assert_array_equal(ours(tv.tensor(x)).numpy(), theirs(torch.tensor(x)).numpy())
        ours = lambda x: x.masked_fill(tv.tensor(mask), 0.0) * 2  # noqa: E731
        theirs = lambda x: x.masked_fill(torch.from_numpy(mask), 0.0) * 2  # noqa: E731
    check_op(ours, theirs, data(shape))


@pytest.mark.parametrize("call, error, match", [
    (lambda x: x.gather(1, tv.tensor([[0, 3]])), IndexError, r"\[0, 3\) for dim 1 of size 3; got min 0, max 3"),
    (lambda x: x.gather(1, tv.tensor([0, 1])), ValueError, r"index shape \(2,\) does not fit input shape \(2, 3\)"),
    (lambda x: x.gather(0, tv.tensor([[0.0]])), TypeError, r"integer tensor, got dtype float32"),
    (lambda x: tv.index_select(x, 1, tv.tensor([[0]])), ValueError, r"must be 1-D, got shape \(1, 1\)"),
    (lambda x: tv.index_select(x, 1, tv.tensor([-1])), IndexError, r"\[0, 3\) for dim 1 of size 3"),
    (lambda x: x.masked_fill(tv.tensor([1, 0, 1]), 0.0), TypeError, r"bool tensor, got dtype int64"),
])
def test_bad_input_is_named(call, error, match):
    with pytest.raises(error, match=match):
        call(tv.zeros(2, 3))


# ------------------------------------------------------------------ scatter family
from hypothesis import settings  # noqa: E402

from tests.helpers import check_op as check_both  # noqa: E402


def _scatter_case(seed, shape, dim, unique):
    """input of ``shape``, an index along ``dim`` no larger than input, and src of index's
    shape. With ``unique`` no position is written twice (a plain scatter's result is then
    defined; PyTorch leaves repeated writes unordered)."""
    rng = np.random.default_rng(seed)
    n = shape[dim]
    idx_shape = tuple(rng.integers(1, s + 1) for s in shape)
    if unique:
        idx = np.argsort(rng.random(shape), axis=dim)[tuple(slice(0, k) for k in idx_shape)]
    else:
        idx = rng.integers(0, n, idx_shape)
    return rng.standard_normal(shape), idx, rng.standard_normal(idx_shape)


@settings(max_examples=8)
@given(seed=st.integers(0, 2**32 - 1), shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4), data=st.data())
def test_scatter_and_scatter_add(seed, shape, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    x, idx, src = _scatter_case(seed, shape, dim % len(shape), unique=True)
    check_both(lambda a, i, s: tv.scatter(a, dim, i, s), lambda a, i, s: torch.scatter(a, dim, i, s), [x, idx, src])
    check_both(lambda a, i: a.scatter(dim, i, value=2.5), lambda a, i: a.scatter(dim, i, value=2.5), [x, idx])
    x, idx, src = _scatter_case(seed, shape, dim % len(shape), unique=False)
    check_both(lambda a, i, s: tv.scatter_add(a, dim, i, s), lambda a, i, s: torch.scatter_add(a, dim, i, s), [x, idx, src])


@pytest.mark.parametrize("reduce", ["add", "multiply"])
def test_scatter_reduce_forward(reduce):
    x, idx, src = _scatter_case(0, (3, 4), 1, unique=False)
    ours = tv.scatter(tv.tensor(x), 1, tv.tensor(idx), tv.tensor(src), reduce=reduce)
    theirs = torch.scatter(torch.tensor(x), 1, torch.tensor(idx), torch.tensor(src), reduce=reduce)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12)


def test_scatter_with_src_larger_than_index_uses_its_leading_part():
    x, idx = np.zeros((2, 3)), np.array([[2, 0], [1, 2]])
    src = np.arange(12.0).reshape(3, 4)
    ours = tv.scatter(tv.tensor(x), 1, tv.tensor(idx), tv.tensor(src))
    np.testing.assert_array_equal(ours.numpy(), torch.scatter(torch.tensor(x), 1, torch.tensor(idx), torch.tensor(src)).numpy())
    assert tv.gradcheck(lambda a, s: tv.scatter(a, 1, tv.tensor(idx), s),
                        [tv.tensor(x, requires_grad=True), tv.tensor(src, requires_grad=True)])


@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("alpha", [1, -0.5])
def test_index_add(dim, alpha):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 4))
    idx = np.array([0, 2, 0, 1, 2])[: {0: 5, 1: 5, -1: 3}[dim]] % x.shape[dim]
    src_shape = list(x.shape)
    src_shape[dim] = len(idx)
    check_both(lambda a, s: tv.index_add(a, dim, tv.tensor(idx), s, alpha=alpha),
               lambda a, s: torch.index_add(a, dim, torch.tensor(idx), s, alpha=alpha), [x, rng.standard_normal(src_shape)])


@settings(max_examples=8)
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=1, base_shape=(3, 4), max_dims=2), seed=st.integers(0, 2**32 - 1),
       extra=st.integers(0, 3))
def test_masked_scatter(shapes, seed, extra):
    """The mask broadcasts to the input; source has at least as many elements as it selects."""
    rng = np.random.default_rng(seed)
    mask = rng.random(shapes.input_shapes[0]) < 0.5
    n = int(np.broadcast_to(mask, (3, 4)).sum()) + extra
    check_both(lambda a, s: tv.masked_scatter(a, tv.tensor(mask), s),
               lambda a, s: torch.masked_scatter(a, torch.tensor(mask), s),
               [rng.standard_normal((3, 4)), rng.standard_normal(n)])


def test_in_place_scatter_family_match_pytorch():
    rng = np.random.default_rng(6)
    x, idx, src = _scatter_case(6, (3, 4), 1, unique=True)
    mask = rng.random((3, 4)) < 0.5
    results = []
    for lib in (tv, torch):
        w = lib.tensor(src, requires_grad=True)
        y = lib.tensor(x) * 1
        y.scatter_(1, lib.tensor(idx), w)
        y.scatter_add_(1, lib.tensor(idx), w * 2)
        y.index_add_(0, lib.tensor([2, 0]), lib.ones(2, 4, dtype=lib.float64), alpha=3)
        y.masked_scatter_(lib.tensor(mask), w.reshape(-1) * 3)
        (y * y).sum().backward()
        results.append((y.detach().numpy(), w.grad.numpy()))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12)


SCATTER_BAD = [
    (lambda: tv.scatter(tv.ones(2, 3), 1, tv.tensor([[0, 5]]), tv.ones(2, 3)), IndexError,
     r"scatter: index values must lie in \[0, 3\) for dim 1 of size 3; got min 0, max 5"),
    (lambda: tv.scatter(tv.ones(2, 3), 1, tv.tensor([0, 1]), tv.ones(2, 3)), ValueError,
     r"scatter: index of shape \(2,\) does not fit input \(2, 3\) and src \(2, 3\) for dim 1"),
    (lambda: tv.scatter(tv.ones(2, 3), 0, tv.tensor([[0]])), TypeError, "exactly one of src"),
    (lambda: tv.scatter_add(tv.ones(2, 3), 0, tv.tensor([[0.5]]), tv.ones(1, 1)), TypeError, "index must be an integer tensor"),
    (lambda: tv.index_add(tv.ones(2, 3), 0, tv.tensor([0, 1]), tv.ones(3, 3)), ValueError,
     r"index_add: source of shape \(3, 3\) must have input's shape \(2, 3\) with dim 0 of size len\(index\) = 2"),
    (lambda: tv.masked_scatter(tv.ones(2, 3), tv.ones(2, 3) > 0, tv.ones(4)), ValueError,
     r"masked_scatter: mask selects 6 elements but source of shape \(4,\) has only 4"),
    (lambda: tv.masked_scatter(tv.ones(2, 3), tv.ones(2, 2) > 0, tv.ones(6)), ValueError,
     r"mask of shape \(2, 2\) does not broadcast to input of shape \(2, 3\)"),
]


@pytest.mark.parametrize("call, error, message", SCATTER_BAD)
def test_scatter_family_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_zero_dim_index_select_and_gather_as_pytorch():
    x = np.array(1.5)
    check_both(lambda t: tv.index_select(t, 0, tv.tensor([0])), lambda t: torch.index_select(t, 0, torch.tensor([0])), [x])
    check_both(lambda t: tv.gather(t, -1, tv.tensor(0)), lambda t: torch.gather(t, -1, torch.tensor(0)), [x])
    check_both(lambda t: t.gather(0, tv.tensor([0, 0])), lambda t: t.gather(0, torch.tensor([0, 0])), [x])


def test_embedding_index_ranks_as_pytorch():
    """0-d and 1-d indices look rows up like PyTorch; a 1-D weight is refused, as there."""
    weight = np.random.default_rng(7).standard_normal((4, 3))
    for idx in (2, [1, 3, 1]):
        check_both(lambda w: tv.embedding(tv.tensor(idx), w),
                   lambda w: torch.nn.functional.embedding(torch.tensor(idx), w), [weight])
    with pytest.raises(ValueError, match=r"embedding: weight must be .*got shape \(3,\)"):
        tv.embedding(tv.tensor([1]), tv.ones(3))


@pytest.mark.parametrize("accumulate", [False, True])
def test_index_put_with_index_tensors(accumulate):
    rng = np.random.default_rng(9)
    rows, cols = np.array([0, 2, 0]), np.array([1, 3, 1])
    if not accumulate:
        rows, cols = rows[:2], cols[:2]  # a repeated position without accumulate has no defined winner
    check_both(lambda x, v: tv.index_put(x, (tv.tensor(rows), tv.tensor(cols)), v, accumulate),
               lambda x, v: torch.index_put(x, (torch.tensor(rows), torch.tensor(cols)), v, accumulate),
               [rng.standard_normal((3, 4)), rng.standard_normal(len(rows))])
