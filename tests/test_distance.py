"""functional/distance.py: cosine_similarity and pairwise_distance against torch (float32,
float64, forward and backward) over Hypothesis shapes that broadcast, and finite differences."""
from __future__ import annotations

import numpy as np
import pytest
import torch.nn.functional as TF
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinyvision as tv
from tests.helpers import DTYPES, check_against_torch, check_op

F = tv.nn.functional
PAIRS = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=3, min_side=1, max_side=4)


@settings(max_examples=10)
@given(shapes=PAIRS, seed=st.integers(0, 2**16), dim=st.integers(-1, 0))
def test_cosine_similarity(shapes, seed, dim):
    # along a size-1 dim cos is exactly +-1 and its gradient is 0 up to rounding noise: nothing to compare
    assume(shapes.result_shape[dim] >= 2)
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(shapes.input_shapes[0]), rng.standard_normal(shapes.input_shapes[1])
    check_op(lambda x, y: F.cosine_similarity(x, y, dim), lambda x, y: TF.cosine_similarity(x, y, dim), [a, b])


@pytest.mark.parametrize("dtype", DTYPES)
def test_cosine_similarity_of_a_zero_vector_is_zero_as_torch(dtype):
    a = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]], dtype=dtype)
    b = np.array([[1.0, 2.0, 2.0], [0.0, 0.0, 0.0]], dtype=dtype)
    check_against_torch(F.cosine_similarity, TF.cosine_similarity, [a, b], requires_grad=[False, True])


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
@pytest.mark.parametrize("keepdim", [False, True])
@settings(max_examples=4)
@given(shapes=PAIRS, seed=st.integers(0, 2**16))
def test_pairwise_distance(p, keepdim, shapes, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(shapes.input_shapes[0]), rng.standard_normal(shapes.input_shapes[1])
    check_op(lambda x, y: F.pairwise_distance(x, y, p, keepdim=keepdim),
             lambda x, y: TF.pairwise_distance(x, y, p, keepdim=keepdim), [a, b])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"cosine_similarity: x1 of shape \(2, 3\) and x2 of shape \(4,\) "
                                         r"do not broadcast"):
        F.cosine_similarity(tv.zeros((2, 3)), tv.zeros(4))
    with pytest.raises(IndexError, match="cosine_similarity: dim 2 is out of range"):
        F.cosine_similarity(tv.zeros((2, 3)), tv.zeros((2, 3)), dim=2)
    with pytest.raises(TypeError, match="pairwise_distance: x2 must be a floating-point tensor.*int64"):
        F.pairwise_distance(tv.zeros((2, 3)), tv.tensor(np.ones((2, 3), dtype=np.int64)))
    with pytest.raises(ValueError, match="pairwise_distance: inputs must have at least one dim"):
        F.pairwise_distance(tv.tensor(1.0), tv.tensor(2.0))
