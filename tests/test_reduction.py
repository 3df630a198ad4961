"""Reductions and softmax against PyTorch (float32 and float64) and finite differences.

Hypothesis draws the shape, the dims to reduce (an int, a tuple or None, some of them
negative) and keepdim. Values for max-like ops are distinct (no ties) in the random tests;
PyTorch's tie rules are checked on fixed inputs.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinyvision as tv
from tests.helpers import DTYPES, check_against_torch
from tests.helpers import check_op as check

SEEDS = st.integers(0, 2**32 - 1)



@st.composite
def reduce_args(draw, min_side: int = 0):
    """(shape, dim, keepdim): dim is None, an int or a tuple, each axis maybe negative."""
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=min_side, max_side=4))
    axes = draw(st.lists(st.integers(0, len(shape) - 1), min_size=1, max_size=len(shape), unique=True))
    axes = [a - len(shape) if draw(st.booleans()) else a for a in axes]
    dim = draw(st.sampled_from([None, axes[0], tuple(axes)]))
    return shape, dim, draw(st.booleans())


def torch_dim(dim, ndim: int):
    """amax/amin/logsumexp in torch take no dim=None: name every dim."""
    return tuple(range(ndim)) if dim is None else dim


def distinct(shape, rng) -> np.ndarray:
    """Values at least 0.1 apart (no ties), in random order, with mixed signs."""
    n = int(np.prod(shape))
    return (rng.permutation(n) - n / 2 + 0.5).reshape(shape) * 0.1


@settings(max_examples=20)
@given(args=reduce_args(), seed=SEEDS)
def test_sum_mean(args, seed):
    shape, dim, keepdim = args
    x = np.random.default_rng(seed).standard_normal(shape)
    check(lambda t: tv.sum(t, dim, keepdim), lambda t: torch.sum(t, dim, keepdim), [x])
    if all(n for n in shape):  # the mean over an empty dim is nan (tested below)
        check(lambda t: t.mean(dim, keepdim), lambda t: t.mean(dim, keepdim), [x])


@pytest.mark.parametrize("correction", [0, 1, 2])
@settings(max_examples=10)
@given(args=reduce_args(min_side=1), seed=SEEDS)
def test_var_std(correction, args, seed):
    shape, dim, keepdim = args
    axes = range(len(shape)) if dim is None else [dim] if isinstance(dim, int) else dim
    if int(np.prod([shape[a] for a in axes])) <= correction:  # n - correction <= 0: see below
        return
    x = np.random.default_rng(seed).standard_normal(shape)
    check(lambda t: tv.var(t, dim, correction=correction, keepdim=keepdim),
          lambda t: torch.var(t, dim, correction=correction, keepdim=keepdim), [x])
    check(lambda t: t.std(dim, keepdim=keepdim, correction=correction),
          lambda t: t.std(dim, keepdim=keepdim, correction=correction), [x])


def test_var_without_degrees_of_freedom():
    """n - correction <= 0: torch divides by max(0, n - correction), giving inf or nan.
    (For correction > n torch's backward divides by the negative n - correction, which
    contradicts its own forward, so there only the forward is compared.)"""
    x = np.array([[1.0, 2.0], [3.0, 3.0]])
    check_against_torch(lambda t: tv.var(t, 1, correction=2), lambda t: torch.var(t, 1, correction=2), [x])
    check_against_torch(lambda t: t.var(), lambda t: t.var(), [np.array([4.0])])  # one sample
    np.testing.assert_array_equal(tv.var(tv.tensor(x), 1, correction=3).numpy(),
                                  torch.var(torch.tensor(x), 1, correction=3).numpy())


@pytest.mark.parametrize("op", ["amax", "amin"])
@settings(max_examples=15)
@given(args=reduce_args(min_side=1), seed=SEEDS)
def test_amax_amin(op, args, seed):
    shape, dim, keepdim = args
    x = distinct(shape, np.random.default_rng(seed))
    check(lambda t: getattr(tv, op)(t, dim, keepdim),
          lambda t: getattr(torch, op)(t, torch_dim(dim, t.ndim), keepdim), [x])


@settings(max_examples=15)
@given(args=reduce_args(min_side=1), seed=SEEDS)
def test_logsumexp(args, seed):
    shape, dim, keepdim = args
    x = 3 * np.random.default_rng(seed).standard_normal(shape)
    check(lambda t: tv.logsumexp(t, dim, keepdim), lambda t: torch.logsumexp(t, torch_dim(dim, t.ndim), keepdim), [x])
    check(lambda t: t.logsumexp(dim, keepdim), lambda t: t.logsumexp(torch_dim(dim, t.ndim), keepdim), [x + 1000])


def torch_prod(t, dim, keepdim):
    """torch.prod takes one int dim: reduce the dims one at a time, last first."""
    if dim is None:
        return t.prod().reshape((1,) * t.ndim) if keepdim else t.prod()
    for d in sorted((d % t.ndim for d in ((dim,) if isinstance(dim, int) else dim)), reverse=True):
        t = t.prod(d, keepdim)
    return t


@settings(max_examples=20)
@given(args=reduce_args(), seed=SEEDS, zeros=st.integers(0, 2))
def test_prod(args, seed, zeros):
    """Values in +-[0.5, 1.5], with up to two exact zeros (where x_others / x_i would fail)."""
    shape, dim, keepdim = args
    rng = np.random.default_rng(seed)
    x = rng.choice([-1, 1], shape) * rng.uniform(0.5, 1.5, shape)
    x.reshape(-1)[rng.permutation(x.size)[:zeros]] = 0.0
    check(lambda t: tv.prod(t, dim, keepdim), lambda t: torch_prod(t, dim, keepdim), [x])


@pytest.mark.parametrize("p", [2, "fro", 1, 3, 1.5, 0, float("inf"), float("-inf")])
@settings(max_examples=10)
@given(args=reduce_args(min_side=1), seed=SEEDS)
def test_norm(p, args, seed):
    """Distinct nonzero |x| keep gradcheck off the kinks of |x| and of max |x|."""
    shape, dim, keepdim = args
    rng = np.random.default_rng(seed)
    x = rng.choice([-1, 1], shape) * (rng.permutation(int(np.prod(shape))).reshape(shape) + 1) * 0.1
    ord_ = 2 if p == "fro" else p
    check(lambda t: tv.norm(t, p, dim, keepdim),
          lambda t: torch.linalg.vector_norm(t, ord_, dim, keepdim), [x])


@pytest.mark.parametrize("dtype", DTYPES)
def test_norm_conventions(dtype):
    """The gradient of a zero norm is 0; the inf-norm shares its gradient among ties; and
    'fro' over a matrix is torch.norm's Frobenius norm."""
    x = np.array([[0.0, 0.0, 0.0], [3.0, -3.0, 1.0]], dtype=dtype)
    for p in (2, 1, 3, float("inf")):
        check_against_torch(lambda t: tv.norm(t, p, dim=1), lambda t: torch.linalg.vector_norm(t, p, dim=1), [x])
    m = np.random.default_rng(0).standard_normal((3, 4)).astype(dtype)
    check_against_torch(lambda t: t.norm("fro"), lambda t: torch.norm(t, "fro"), [m])
    check_against_torch(lambda t: t.norm(), lambda t: t.norm(), [m])


@settings(max_examples=15)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4), data=st.data(), seed=SEEDS)
def test_softmax_log_softmax(shape, data, seed):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = 2 * np.random.default_rng(seed).standard_normal(shape)
    check(lambda t: tv.softmax(t, dim), lambda t: torch.softmax(t, dim), [x])
    check(lambda t: t.log_softmax(dim), lambda t: t.log_softmax(dim), [x])


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_is_stable_for_large_logits(dtype):
    """exp(1000) overflows; shifting by the max does not. -inf logits get probability 0."""
    x = np.array([[1000.0, 999.0, -1000.0], [-1000.0, -1001.0, -1000.5], [0.0, -np.inf, 1.0]], dtype=dtype)
    for ours, theirs in [(tv.softmax, torch.softmax), (tv.log_softmax, torch.log_softmax)]:
        for dim in (1, -1):
            check_against_torch(lambda t: ours(t, dim), lambda t: theirs(t, dim), [x])
    check_against_torch(lambda t: tv.logsumexp(t, 1), lambda t: torch.logsumexp(t, 1), [x])
    check_against_torch(lambda t: tv.logsumexp(t, 0), lambda t: torch.logsumexp(t, 0), [x[:2, :]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_dims(dtype):
    """Over an empty dim: sum 0, prod 1, mean nan, logsumexp -inf, softmax empty; max refuses."""
    x = np.zeros((2, 0, 3), dtype=dtype)
    for ours, theirs in [(lambda t: t.sum(1), lambda t: t.sum(1)), (lambda t: t.prod(1), lambda t: t.prod(1)),
                         (lambda t: t.mean(1), lambda t: t.mean(1)),
                         (lambda t: tv.logsumexp(t, 1), lambda t: torch.logsumexp(t, 1)),
                         (lambda t: tv.softmax(t, 1), lambda t: torch.softmax(t, 1)),
                         (lambda t: tv.log_softmax(t, 1), lambda t: torch.log_softmax(t, 1)),
                         (lambda t: tv.amax(t, 2), lambda t: torch.amax(t, 2))]:
        check_against_torch(ours, theirs, [x])
    for op in ("amax", "amin", "argmax", "max"):
        with pytest.raises(IndexError, match=rf"{op}: cannot reduce over dim 1 of size 0 \(input shape \(2, 0, 3\)\)"):
            getattr(tv, op)(tv.tensor(x), 1)


@pytest.mark.parametrize("op", ["max", "min"])
@settings(max_examples=15)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4), data=st.data(), seed=SEEDS)
def test_max_min_three_forms(op, shape, data, seed):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    keepdim = data.draw(st.booleans())
    rng = np.random.default_rng(seed)
    x = distinct(shape, rng)
    # full reduction -> a value
    check(lambda t: getattr(t, op)(), lambda t: getattr(t, op)(), [x])
    # dim -> (values, indices); the gradient goes to the index
    check(lambda t: getattr(tv, op)(t, dim, keepdim).values,
          lambda t: getattr(torch, op)(t, dim, keepdim).values, [x])
    ours, theirs = getattr(tv, op)(tv.tensor(x), dim, keepdim), getattr(torch, op)(torch.tensor(x), dim, keepdim)
    assert ours.indices.dtype == np.int64
    np.testing.assert_array_equal(ours.indices.numpy(), theirs.indices.numpy())
    values, indices = ours  # a named tuple unpacks like torch's
    np.testing.assert_array_equal(indices.numpy(), theirs[1].numpy())
    # a tensor -> elementwise maximum/minimum (broadcast), no ties: even vs odd tenths
    y = 0.2 * rng.integers(-5, 5, shape[-1:]) + 0.1
    x2 = 0.2 * np.round(x * 5)
    check(lambda a, b: getattr(tv, op)(a, b), lambda a, b: getattr(torch, op)(a, b), [x2, y])


@pytest.mark.parametrize("dtype", DTYPES)
def test_tie_conventions(dtype):
    """max()/amax share the gradient among tied maxima; max(dim) gives it to the returned
    index (the first); argmax returns the first."""
    x = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [-1.0, 5.0, -1.0, 5.0]], dtype=dtype)
    for f in [lambda m, t: m.max(t), lambda m, t: m.min(t), lambda m, t: m.amax(t, 1),
              lambda m, t: m.amin(t, (0, 1)), lambda m, t: m.max(t, 1).values,
              lambda m, t: m.min(t, 0, keepdim=True).values, lambda m, t: m.norm(t, float("inf"), 1)]:
        check_against_torch(lambda t: f(tv, t), lambda t: f(torch, t), [x])
    for dim in (None, 0, 1, -1):
        for keepdim in (False, True):
            for op in ("argmax", "argmin"):
                ours = getattr(tv.tensor(x), op)(dim, keepdim)
                theirs = getattr(torch.tensor(x), op)(dim, keepdim)
                assert ours.dtype == np.int64 and ours.shape == tuple(theirs.shape)
                np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
            for op in ("max", "min"):
                if dim is not None:
                    np.testing.assert_array_equal(getattr(tv.tensor(x), op)(dim, keepdim).indices.numpy(),
                                                  getattr(torch.tensor(x), op)(dim, keepdim).indices.numpy())


@pytest.mark.parametrize("dtype", DTYPES)
def test_method_forms(dtype):
    x = np.random.default_rng(3).standard_normal((2, 3, 4)).astype(dtype)
    cases = [lambda t: t.sum(), lambda t: t.sum(-1), lambda t: t.sum((0, 2), keepdim=True),
             lambda t: t.mean(1), lambda t: t.var(), lambda t: t.std(0, correction=0),
             lambda t: t.amax(-2), lambda t: t.amin((0, -1)), lambda t: t.prod(2),
             lambda t: t.logsumexp(1), lambda t: t.softmax(-1), lambda t: t.log_softmax(0),
             lambda t: t.max(1)[0], lambda t: t.min()]
    for f in cases:
        check_against_torch(f, f, [x])
    check_against_torch(lambda t: t.norm(1, -1), lambda t: t.norm(1, -1), [x])


def test_bad_input():
    x = tv.ones((2, 3))
    with pytest.raises(IndexError, match=r"sum: dim 2 is out of range for a tensor of 2 dims \(expected -2..1\)"):
        x.sum(2)
    with pytest.raises(IndexError, match="softmax: dim -3 is out of range"):
        tv.softmax(x, -3)
    with pytest.raises(ValueError, match=r"mean: dim \(1, -1\) names an axis twice"):
        x.mean((1, -1))
    with pytest.raises(TypeError, match="max: dim must be an int"):
        tv.max(x, (0, 1))
    with pytest.raises(ValueError, match="norm: p must be a number, 'fro', inf or -inf, got 'nuc'"):
        tv.norm(x, "nuc")


@pytest.mark.parametrize("op", ["all", "any"])
@pytest.mark.parametrize("dim, keepdim", [(None, False), (0, False), (1, True), ((0, 1), False), (-1, False)])
def test_all_any(op, dim, keepdim):
    x = np.array([[0.0, 1.0, 2.0], [3.0, 0.5, -1.0], [0.0, 0.0, 0.0]])
    for values in (x, x > 0):
        ours, theirs = tv.tensor(values), torch.tensor(values)
        if dim is None:
            a, b = getattr(tv, op)(ours), getattr(torch, op)(theirs)
        else:
            a, b = getattr(ours, op)(dim, keepdim), getattr(torch, op)(theirs, dim, keepdim)
        assert a.dtype == np.bool_ and tuple(a.shape) == tuple(b.shape)
        np.testing.assert_array_equal(a.numpy(), b.numpy())


# ------------------------------------------------------------------ PyTorch's other spellings
VAR_FORMS = {
    "unbiased_false": lambda lib, x: lib.var(x, 1, False),
    "unbiased_only": lambda lib, x: lib.std(x, False),
    "unbiased_keepdim": lambda lib, x: x.std(0, True, True),
    "correction_2": lambda lib, x: lib.var(x, 1, correction=2),
    "correction_kw_keepdim": lambda lib, x: x.var(dim=(0, 1), keepdim=True, correction=0),
}


@pytest.mark.parametrize("form", VAR_FORMS)
def test_var_std_unbiased_and_correction(form):
    x = np.random.default_rng(1).standard_normal((3, 4))
    check(lambda t: VAR_FORMS[form](tv, t), lambda t: VAR_FORMS[form](torch, t), [x])


def test_prod_with_dtype():
    for dtype in (tv.float64, tv.float32):
        ours = tv.prod(tv.tensor([[1, 2], [3, 4]]), 1, dtype=dtype)
        theirs = torch.prod(torch.tensor([[1, 2], [3, 4]]), 1, dtype=torch.float64 if dtype is tv.float64 else torch.float32)
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
        assert ours.dtype == dtype
    check(lambda t: t.prod(dtype=tv.float64), lambda t: t.prod(dtype=torch.float64), [np.array([1.5, -2.0, 0.5])])


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dim", [0, -1])
def test_softmax_of_a_zero_dim_tensor(op, dim):
    check(lambda t: getattr(tv, op)(t, dim), lambda t: getattr(torch, op)(t, dim), [np.array(0.7)])
