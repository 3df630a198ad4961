"""matmul / @ and linear against PyTorch (float32 and float64) and finite differences.

Hypothesis draws the matrix sizes (0 included: an empty product is a matrix of zeros), the
batch dims of both operands (broadcast against each other) and whether either side is 1-D.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinyvision as tv
from tests.helpers import DTYPES, check_against_torch
from tests.helpers import check_op as check

SIDES = st.integers(0, 4)



@settings(max_examples=40)
@given(n=SIDES, k=SIDES, m=SIDES, batches=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3),
       a_vector=st.booleans(), b_vector=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_matmul(n, k, m, batches, a_vector, b_vector, seed):
    """(..., n, k) @ (..., k, m), where a 1-D operand is (k,) and has no batch dims."""
    rng = np.random.default_rng(seed)
    a_shape = (k,) if a_vector else batches.input_shapes[0] + (n, k)
    b_shape = (k,) if b_vector else batches.input_shapes[1] + (k, m)
    a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
    check(tv.matmul, torch.matmul, [a, b])
    check(lambda x, y: x @ y, lambda x, y: x @ y, [a, b])


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_forms(dtype):
    """Tensor.matmul, x @ y, and a NumPy array on either side of @ reach the same op."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 3)).astype(dtype), rng.standard_normal((3, 4)).astype(dtype)
    check_against_torch(lambda x, y: x.matmul(y), lambda x, y: x.matmul(y), [a, b])
    check_against_torch(lambda y: a @ y, lambda y: torch.tensor(a) @ y, [b])
    check_against_torch(lambda x: x @ b, lambda x: x @ torch.tensor(b), [a])
    check_against_torch(lambda x: x.T @ x, lambda x: x.T @ x, [a])  # the same tensor twice
    assert (tv.tensor(a) @ tv.tensor(b)).dtype == dtype


@settings(max_examples=20)
@given(lead=hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3), fan_in=st.integers(1, 4),
       fan_out=st.integers(1, 4), bias=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_linear(lead, fan_in, fan_out, bias, seed):
    """x (..., in), W (out, in), b (out,): x W^T + b, against torch.nn.functional.linear."""
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(lead + (fan_in,)), rng.standard_normal((fan_out, fan_in))]
    if bias:
        arrays.append(rng.standard_normal(fan_out))
    check(tv.nn.functional.linear, TF.linear, arrays)


def test_linear_with_a_0d_bias_broadcasts_and_sums_its_gradient_back():
    rng = np.random.default_rng(1)
    check(tv.nn.functional.linear, TF.linear, [rng.standard_normal((2, 3)), rng.standard_normal((4, 3)),
                                               np.array(0.5)])


def test_bad_input():
    a, b = tv.ones((2, 3)), tv.ones((4, 5))
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 5\) do not fit: the last dim "
                                         r"of the first \(3\) must equal the second-to-last dim of the second \(4\)"):
        a @ b
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4,\) do not fit.*only dim"):
        tv.matmul(a, tv.ones(4))
    with pytest.raises(ValueError, match=r"matmul: the batch dims of shapes \(2, 2, 3\) and \(5, 3, 1\) "
                                         r"\(\(2,\) and \(5,\)\) cannot be broadcast"):
        tv.ones((2, 2, 3)) @ tv.ones((5, 3, 1))
    with pytest.raises(ValueError, match=r"matmul: both arguments need at least 1 dim, got shapes \(\) and \(3,\)"):
        tv.matmul(tv.tensor(1.0), tv.ones(3))
    with pytest.raises(ValueError, match=r"linear: input of shape \(2, 3\) has 3 features but weight of shape "
                                         r"\(4, 5\) expects 5"):
        tv.nn.functional.linear(a, b)
    with pytest.raises(ValueError, match=r"linear: bias of shape \(3,\) does not fit weight of shape \(4, 3\)"):
        tv.nn.functional.linear(a, tv.ones((4, 3)), tv.ones(3))


# ------------------------------------------------------------------ mm, bmm, addmm, outer
@settings(max_examples=8)
@given(b=st.integers(1, 3), n=SIDES, k=SIDES, m=SIDES, seed=st.integers(0, 2**32 - 1))
def test_named_products(b, n, k, m, seed):
    rng = np.random.default_rng(seed)
    check(tv.mm, torch.mm, [rng.standard_normal((n, k)), rng.standard_normal((k, m))])
    check(tv.bmm, torch.bmm, [rng.standard_normal((b, n, k)), rng.standard_normal((b, k, m))])
    check(lambda x, y: x.outer(y), lambda x, y: x.outer(y), [rng.standard_normal(n), rng.standard_normal(m)])
    for bias_shape in [(n, m), (m,), ()]:
        args = [rng.standard_normal(bias_shape), rng.standard_normal((n, k)), rng.standard_normal((k, m))]
        check(lambda c, x, y: tv.addmm(c, x, y, beta=0.5, alpha=-2.0),
              lambda c, x, y: torch.addmm(c, x, y, beta=0.5, alpha=-2.0), args)
        check(tv.addmm, torch.addmm, args)


def test_addmm_with_beta_zero_ignores_nan_in_input():
    for lib in (tv, torch):
        out = lib.addmm(lib.full((2, 2), float("nan")), lib.ones(2, 3), lib.ones(3, 2), beta=0)
        np.testing.assert_array_equal(out.numpy(), np.full((2, 2), 3.0))


# ------------------------------------------------------------------ einsum
EINSUM = {  # equation -> operand shapes
    "bhqd,bhkd->bhqk": [(2, 2, 3, 4), (2, 2, 5, 4)],  # attention scores
    "bhqk,bhkd->bhqd": [(2, 2, 3, 5), (2, 2, 5, 4)],  # attention output
    "i,ij,j->": [(3,), (3, 4), (4,)],                 # a bilinear form
    "bi,bj->bij": [(2, 3), (2, 4)],                   # batched outer products
    "ij,jk": [(2, 3), (3, 4)],                        # implicit output: ik
    "ij->": [(2, 3)],                                 # sum of everything
    "ij->j": [(2, 3)],                                # a letter summed in one operand alone
    "ii->i": [(3, 3)],                                # a diagonal
    "ii": [(3, 3)],                                   # the trace
    "iij,jk->ik": [(3, 3, 2), (2, 4)],
    "...ij,...jk->...ik": [(2, 3, 4), (2, 4, 5)],
    "b...d,b...d->b...": [(2, 3, 4), (2, 3, 4)],
    "ij,ij,ij->ij": [(2, 3), (2, 3), (2, 3)],         # three operands: NumPy's optimize path
    "i,i->": [(0,), (0,)],                            # empty
}


@pytest.mark.parametrize("equation", EINSUM)
def test_einsum(equation):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s) for s in EINSUM[equation]]
    check(lambda *xs: tv.einsum(equation, *xs), lambda *xs: torch.einsum(equation, *xs), arrays)


@settings(max_examples=6)
@given(sizes=st.lists(st.integers(0, 3), min_size=5, max_size=5), seed=st.integers(0, 2**32 - 1))
def test_einsum_attention_with_drawn_sizes(sizes, seed):
    b, h, q, k, d = sizes
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal((b, h, q, d)), rng.standard_normal((b, h, k, d))]
    check(lambda x, y: tv.einsum("bhqd,bhkd->bhqk", x, y), lambda x, y: torch.einsum("bhqd,bhkd->bhqk", x, y), arrays)


def test_einsum_operand_list_and_same_operand_twice():
    x = np.random.default_rng(1).standard_normal(4)
    check(lambda a: tv.einsum("i,i->", [a, a]), lambda a: torch.einsum("i,i->", [a, a]), [x])


# ------------------------------------------------------------------ tril, triu, diag
@settings(max_examples=8)
@given(shape=hnp.array_shapes(min_dims=2, max_dims=3, min_side=0, max_side=4), diagonal=st.integers(-3, 3),
       seed=st.integers(0, 2**32 - 1))
def test_tril_triu(shape, diagonal, seed):
    x = np.random.default_rng(seed).standard_normal(shape)
    check(lambda t: tv.tril(t, diagonal), lambda t: torch.tril(t, diagonal), [x])
    check(lambda t: t.triu(diagonal), lambda t: t.triu(diagonal), [x])


@pytest.mark.parametrize("shape", [(3,), (0,), (3, 3), (2, 4), (4, 2)])
@pytest.mark.parametrize("diagonal", [-2, 0, 1, 3])
def test_diag_both_directions(shape, diagonal):
    x = np.random.default_rng(2).standard_normal(shape)
    check(lambda t: tv.diag(t, diagonal), lambda t: torch.diag(t, diagonal), [x])
    check(lambda t: t.diag(diagonal), lambda t: t.diag(diagonal), [x])


# ------------------------------------------------------------------ cdist
@pytest.mark.parametrize("p", [2.0, 1.0, 3.0, 0.5, 0.0, float("inf")])
@settings(max_examples=4)
@given(batch=hnp.array_shapes(min_dims=0, max_dims=1, min_side=1, max_side=2), P=st.integers(1, 3),
       R=st.integers(1, 3), M=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_cdist(p, batch, P, R, M, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(batch + (P, M)), rng.standard_normal(batch + (R, M))
    check(lambda x, y: tv.cdist(x, y, p), lambda x, y: torch.cdist(x, y, p), [a, b])


def test_cdist_of_equal_points_has_zero_gradient():
    for lib in (tv, torch):
        x = lib.ones(2, 3, dtype=lib.float64, requires_grad=True)
        lib.cdist(x, x.detach()).sum().backward()
        np.testing.assert_array_equal(x.grad.numpy(), np.zeros((2, 3)))


NAMED_BAD = [
    (lambda: tv.mm(tv.ones(2, 3), tv.ones(4, 5)), ValueError, r"mm: shapes \(2, 3\) and \(4, 5\) cannot be multiplied \(2x3 and 4x5\)"),
    (lambda: tv.mm(tv.ones(2, 3, 1), tv.ones(4, 5)), ValueError, r"mm: input must be a 2-D tensor, got shape \(2, 3, 1\)"),
    (lambda: tv.bmm(tv.ones(2, 3, 4), tv.ones(3, 4, 5)), ValueError, r"bmm: batch sizes differ"),
    (lambda: tv.outer(tv.ones(2, 2), tv.ones(2)), ValueError, r"outer: input must be a 1-D tensor"),
    (lambda: tv.einsum("ij,jk->ik", tv.ones(2, 3), tv.ones(4, 5)), ValueError, r"subscript 'j' has size 3 in one operand and 4"),
    (lambda: tv.einsum("ij->ik", tv.ones(2, 3)), ValueError, r"output subscripts 'ik' must be distinct letters"),
    (lambda: tv.einsum("ijk->i", tv.ones(2, 3)), ValueError, r"subscripts 'ijk' do not fit an operand of shape \(2, 3\)"),
    (lambda: tv.tril(tv.ones(3)), ValueError, r"tril: input must have at least 2 dims, got shape \(3,\)"),
    (lambda: tv.diag(tv.ones(2, 2, 2)), ValueError, r"diag: input must be 1-D or 2-D"),
    (lambda: tv.cdist(tv.ones(2, 3), tv.ones(2, 4)), ValueError, r"cdist: x1 \(2, 3\) and x2 \(2, 4\)"),
]


@pytest.mark.parametrize("call, error, message", NAMED_BAD)
def test_named_products_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("a_shape, b_shape", [((2, 0, 3), (3, 0)), ((2, 3, 0), (0, 3)), ((2, 3, 0), (0, 0)),
                                              ((0, 3, 3), (3, 0)), ((2, 1, 0, 3), (3, 4)), ((0,), (0, 2))])
def test_zero_size_matmul_backward(a_shape, b_shape):
    """Batched (..., n, k) @ (k, m) folds the batch into rows; with a 0 somewhere the row count
    must be written out (NumPy cannot infer -1 among zeros)."""
    rng = np.random.default_rng(0)
    check(tv.matmul, torch.matmul, [rng.standard_normal(a_shape), rng.standard_normal(b_shape)])
    if len(a_shape) > 1:
        w = rng.standard_normal(b_shape[::-1])
        check(tv.linear, TF.linear, [rng.standard_normal(a_shape), w, rng.standard_normal(b_shape[1])])


@pytest.mark.parametrize("shapes", [((2,), (3,)), ((2, 3), (2, 2)), ((2, 1, 3), (3, 2)), ((), (2, 2))])
def test_kron(shapes):
    rng = np.random.default_rng(8)
    check(tv.kron, torch.kron, [rng.standard_normal(s) for s in shapes])
