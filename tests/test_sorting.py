"""Sorting and selection against PyTorch (values, indices and gradients, float32 and float64)
and against finite differences.

Inputs come from a standard normal, so they have no ties: with ties PyTorch may order equal
elements either way, and the gradient of a selection is then not defined by values alone.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinyvision as tv
from tests.helpers import check_op

SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)
SEEDS = st.integers(0, 2**32 - 1)


def _draw(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape)


def _same_indices(ours, theirs):
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


# name -> (ours, torch), each a function of (x, dim) giving (values, indices)
SELECT = {
    "sort": (lambda x, d: tv.sort(x, d), lambda x, d: torch.sort(x, d)),
    "sort_descending": (lambda x, d: tv.sort(x, d, descending=True), lambda x, d: torch.sort(x, d, descending=True)),
    "topk_largest": (lambda x, d: tv.topk(x, (x.shape[d] + 1) // 2, d),
                     lambda x, d: torch.topk(x, (x.shape[d] + 1) // 2, d)),
    "topk_smallest": (lambda x, d: tv.topk(x, 1, d, largest=False), lambda x, d: torch.topk(x, 1, d, largest=False)),
    "kthvalue": (lambda x, d: tv.kthvalue(x, x.shape[d], d), lambda x, d: torch.kthvalue(x, x.shape[d], d)),
    "kthvalue_keepdim": (lambda x, d: tv.kthvalue(x, 1, d, keepdim=True), lambda x, d: torch.kthvalue(x, 1, d, keepdim=True)),
    "median_dim": (lambda x, d: tv.median(x, d), lambda x, d: torch.median(x, d)),
    "x.median_keepdim": (lambda x, d: x.median(d, keepdim=True), lambda x, d: x.median(d, keepdim=True)),
    "x.sort": (lambda x, d: x.sort(d), lambda x, d: x.sort(d)),
    "x.topk": (lambda x, d: x.topk(1, d), lambda x, d: x.topk(1, d)),
}


@pytest.mark.parametrize("name", SELECT)
@settings(max_examples=6)
@given(shape=SHAPES, seed=SEEDS, data=st.data())
def test_selection_values_indices_and_gradients(name, shape, seed, data):
    ours, theirs = SELECT[name]
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = _draw(shape, seed)
    check_op(lambda t: ours(t, dim).values, lambda t: theirs(t, dim).values, [x])
    _same_indices(ours(tv.tensor(x), dim).indices, theirs(torch.tensor(x), dim).indices)


@settings(max_examples=6)
@given(shape=SHAPES, seed=SEEDS)
def test_median_of_all_elements_is_the_lower_median(shape, seed):
    x = _draw(shape, seed)
    check_op(tv.median, torch.median, [x])


def test_argsort_and_even_count_median_and_zero_dim():
    x = np.array([[0.3, -1.0, 2.0, 0.5], [4.0, 1.0, -2.0, 3.0]])
    for dim, desc in ((0, False), (1, True), (-1, False)):
        _same_indices(tv.argsort(tv.tensor(x), dim, descending=desc), torch.argsort(torch.tensor(x), dim, descending=desc))
    assert tv.median(tv.tensor(x)).item() == torch.median(torch.tensor(x)).item() == 0.5  # lower of 0.5, 1.0
    z = tv.tensor(2.0, requires_grad=True)
    v, i = tv.sort(z)
    assert v.shape == () and i.item() == 0 and tv.topk(z, 1).values.item() == 2.0
    v.backward()
    assert z.grad.item() == 1.0


def test_ties_and_nan_keep_pytorchs_stable_order():
    x = np.array([1.0, np.nan, 3.0, 1.0, 3.0, -np.inf])
    for desc in (False, True):
        ours, theirs = tv.sort(tv.tensor(x), descending=desc, stable=True), torch.sort(torch.tensor(x), descending=desc, stable=True)
        np.testing.assert_array_equal(ours.values.numpy(), theirs.values.numpy())
        _same_indices(ours.indices, theirs.indices)


@pytest.mark.parametrize("values", [[3, 1, 3, 2, 1, 7], [[2.5, -1.0], [2.5, 0.0]], [4], []])
def test_unique_with_inverse_and_counts(values):
    for kw in ({}, dict(return_inverse=True), dict(return_counts=True), dict(return_inverse=True, return_counts=True)):
        ours = tv.unique(tv.tensor(values), **kw)
        theirs = torch.unique(torch.tensor(values), **kw)
        for a, b in zip(ours if kw else [ours], theirs if kw else [theirs]):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
            assert a.dtype == np.dtype(str(b.dtype).replace("torch.", ""))


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_unique_along_a_dim(dim):
    x = [[1, 2, 1, 2], [0, 5, 0, 5], [1, 2, 1, 2]]
    ours = tv.unique(tv.tensor(x), return_inverse=True, return_counts=True, dim=dim)
    theirs = torch.unique(torch.tensor(x), return_inverse=True, return_counts=True, dim=dim)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("values", [[[0.0, 1.5, 0.0], [2.0, 0.0, -1.0]], [0, 0, 3], 5.0, 0.0, [True, False]])
def test_nonzero_and_where_one_argument(values):
    ours, theirs = tv.tensor(values), torch.tensor(values)
    _same_indices(tv.nonzero(ours), torch.nonzero(theirs))
    _same_indices(ours.nonzero(), theirs.nonzero())
    for a, b in zip(tv.nonzero(ours, as_tuple=True), torch.nonzero(theirs, as_tuple=True)):
        _same_indices(a, b)
    if ours.ndim:
        for a, b in zip(tv.where(ours != 0), torch.where(theirs != 0)):
            _same_indices(a, b)


SEARCH = [
    ([1.0, 2.0, 2.0, 3.0, 5.0], [[2.0, 0.0], [6.0, 2.5]]),
    ([[1.0, 3.0, 5.0], [2.0, 2.0, 4.0]], [[3.0, 0.0, 6.0], [2.0, 4.0, 1.0]]),
    ([1.0, 3.0], 3.0),
]


@pytest.mark.parametrize("seq, values", SEARCH)
@pytest.mark.parametrize("kw", [{}, dict(right=True), dict(side="right"), dict(side="left"), dict(out_int32=True)])
def test_searchsorted(seq, values, kw):
    v = values if isinstance(values, float) else tv.tensor(values)
    tv_v = values if isinstance(values, float) else torch.tensor(values)
    ours = tv.searchsorted(tv.tensor(seq), v, **kw)
    theirs = torch.searchsorted(torch.tensor(seq), tv_v, **kw)
    _same_indices(ours, theirs)
    assert ours.dtype == (np.int32 if kw.get("out_int32") else np.int64)


def test_searchsorted_with_sorter():
    seq, order = [5.0, 1.0, 3.0], [1, 2, 0]
    ours = tv.searchsorted(tv.tensor(seq), tv.tensor([2.0, 6.0]), sorter=tv.tensor(order))
    theirs = torch.searchsorted(torch.tensor(seq), torch.tensor([2.0, 6.0]), sorter=torch.tensor(order))
    _same_indices(ours, theirs)


BAD = [
    (lambda: tv.sort(tv.ones(2, 3), dim=2), IndexError, r"sort: dim 2 is out of range for a tensor of 2 dims"),
    (lambda: tv.topk(tv.ones(3), 5), IndexError, r"topk: k \(5\) is out of range for dim -1 of size 3"),
    (lambda: tv.kthvalue(tv.ones(3), 0), IndexError, r"kthvalue: k \(0\) is out of range .* \(expected 1..3\)"),
    (lambda: tv.median(tv.ones(0)), IndexError, r"median: cannot take the median of an empty tensor \(shape \(0,\)\)"),
    (lambda: tv.searchsorted(tv.ones(2, 3), tv.ones(3, 1)), ValueError, r"sorted_sequence of shape \(2, 3\) and input of shape \(3, 1\)"),
    (lambda: tv.searchsorted(tv.ones(3), tv.ones(1), right=True, side="left"), RuntimeError, "side and right can't be set to opposites"),
    (lambda: tv.where(tv.ones(2), tv.ones(2), tv.zeros(2)), TypeError, "where expected condition to be a boolean tensor, but got a tensor with dtype float32"),
]


@pytest.mark.parametrize("call, error, message", BAD)
def test_bad_input_names_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_where_accepts_uint8_with_pytorchs_warning():
    cond = np.array([1, 0, 1], dtype=np.uint8)
    with pytest.warns(UserWarning, match="uint8 condition"):
        out = tv.where(tv.tensor(cond), tv.ones(3), tv.zeros(3))
    np.testing.assert_array_equal(out.numpy(), [1, 0, 1])
