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
