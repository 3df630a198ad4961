"""cumsum, cumprod and diff against PyTorch (float32 and float64, forward and backward) and
against finite differences; cumprod also on inputs with zeros, where the shortcut gradient
y / x would divide by zero."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinyvision as tv
from tests.helpers import check_op

SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
SEEDS = st.integers(0, 2**32 - 1)


def _dim(data, shape):
    return data.draw(st.integers(-max(len(shape), 1), max(len(shape), 1) - 1))


@pytest.mark.parametrize("op", ["cumsum", "cumprod"])
@settings(max_examples=8)
@given(shape=SHAPES, seed=SEEDS, data=st.data(), zeros=st.booleans())
def test_scans(op, shape, seed, data, zeros):
    dim = _dim(data, shape)
    x = np.random.default_rng(seed).standard_normal(shape)
    if zeros:  # one or two exact zeros along the scan: the hard case for cumprod's gradient
        x = np.where(np.random.default_rng(seed + 1).random(shape) < 0.3, 0.0, x)
    check_op(lambda t: getattr(tv, op)(t, dim), lambda t: getattr(torch, op)(t, dim), [x])
    check_op(lambda t: getattr(t, op)(dim), lambda t: getattr(t, op)(dim), [x])


def test_cumprod_gradient_with_two_zeros_is_exact():
    x = np.array([2.0, 0.0, 3.0, 0.0, 5.0])
    check_op(lambda t: tv.cumprod(t, 0), lambda t: torch.cumprod(t, 0), [x])


def test_integer_scans_give_int64_and_dtype_casts():
    x = [[1, 2], [3, 4]]
    for op in ("cumsum", "cumprod"):
        ours, theirs = getattr(tv, op)(tv.tensor(x, dtype=tv.int32), 1), getattr(torch, op)(torch.tensor(x, dtype=torch.int32), 1)
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
        assert ours.dtype == np.int64 and theirs.dtype == torch.int64
        assert getattr(tv, op)(tv.tensor(x), 0, dtype=tv.float64).dtype == np.float64


@settings(max_examples=8)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4), seed=SEEDS, data=st.data())
def test_diff(shape, seed, data):
    rng = np.random.default_rng(seed)
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    n = data.draw(st.integers(0, 3))
    extra = {}
    for side in data.draw(st.sampled_from([(), ("prepend",), ("append",), ("prepend", "append")])):
        extra[side] = rng.standard_normal(shape[:dim % len(shape)] + (data.draw(st.integers(0, 2)),) + shape[dim % len(shape) + 1:])
    names = list(extra)
    arrays = [rng.standard_normal(shape)] + [extra[k] for k in names]
    check_op(lambda x, *e: tv.diff(x, n, dim, **dict(zip(names, e))),
             lambda x, *e: torch.diff(x, n, dim, **dict(zip(names, e))), arrays)


BAD = [
    (lambda: tv.cumsum(tv.ones(2, 3), 2), IndexError, "cumsum: dim 2 is out of range for a tensor of 2 dims"),
    (lambda: tv.diff(tv.ones(2, 3), prepend=tv.ones(3, 3)), ValueError,
     r"diff: prepend of shape \(3, 3\) must match input of shape \(2, 3\) in every dim but dim -1"),
    (lambda: tv.diff(tv.tensor(1.0)), RuntimeError, "at least one-dimensional"),
    (lambda: tv.diff(tv.ones(3), -1), ValueError, "order n must be a non-negative int, got -1"),
]


@pytest.mark.parametrize("call, error, message", BAD)
def test_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()
