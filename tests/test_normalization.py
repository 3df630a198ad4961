"""batch_norm, layer_norm, group_norm, instance_norm, local_response_norm, normalize, embedding vs PyTorch.

Tolerances come from tests/helpers.tol: float64 ~1e-10 relative, float32 1e-5 relative / 1e-6
absolute, scaled by CANCEL for the batch/layer/group-norm comparisons (below).
"""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyvision as tv
import tinyvision.nn.functional as F
from tests.helpers import DTYPES, check_against_torch, tol


def randn(*shape, dtype=np.float64, seed=7):
    # seed 7, not 0: check_against_torch weights the output by default_rng(0) noise, and an
    # input equal to those weights makes some normalisation gradients cancel to ~0.
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# The input gradient of batch/layer/group norm, inv_std * (g' - mean(g') - x_hat mean(g' x_hat)),
# subtracts terms of size max|g'|: in float32 its rounding error is ~1e-7 * max|g'| * inv_std
# absolute, not relative to the (often much smaller) result. On small groups torch's own float32
# gradient is off from float64 by 2.2e-6 (ours by 5e-7; group_norm (5, 6), 2 groups), which
# exceeds the plain 1e-6 atol, so these comparisons use 4x the float32 tolerance.
CANCEL = 4


def inputs(shape, param_shape, dtype, affine):
    """x, and weight and bias of param_shape when affine."""
    params = [randn(*param_shape, dtype=dtype, seed=1), randn(*param_shape, dtype=dtype, seed=2)]
    return [randn(*shape, dtype=dtype)] + (params if affine else [])


def gradcheck(fn, *arrays):
    """tinyvision.gradcheck in float64 on every float array."""
    assert tv.gradcheck(fn, [tv.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays])


# ----------------------------------------------------------------------------- batch_norm
BN_SHAPES = [(6, 3), (4, 3, 5), (2, 3, 4, 5)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", BN_SHAPES)
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_training_matches_torch(dtype, shape, affine):
    c = shape[1]
    arrays = inputs(shape, (c,), dtype, affine)

    def ours(x, *wb):
        return F.batch_norm(x, None, None, *wb, training=True)

    def theirs(x, *wb):
        return TF.batch_norm(x, None, None, *wb, training=True)

    check_against_torch(ours, theirs, arrays, scale=CANCEL)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", BN_SHAPES)
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_eval_uses_running_stats(dtype, shape, affine):
    c = shape[1]
    mean, var = randn(c, dtype=dtype, seed=3), np.abs(randn(c, dtype=dtype, seed=4)) + 0.5
    arrays = inputs(shape, (c,), dtype, affine)

    def ours(x, *wb):
        return F.batch_norm(x, mean, var, *wb, training=False)

    def theirs(x, *wb):
        return TF.batch_norm(x, torch.tensor(mean), torch.tensor(var), *wb, training=False)

    check_against_torch(ours, theirs, arrays)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum", [0.1, 0.35])
@pytest.mark.parametrize("as_tensor", [True, False])
def test_batch_norm_running_stats_follow_torch(dtype, momentum, as_tensor):
    """Several training steps: the caller's buffers change in place, running_var with the
    unbiased batch variance, exactly as torch updates its own buffers."""
    c = 3
    ours_mean, ours_var = np.zeros(c, dtype), np.ones(c, dtype)
    buffers = (tv.tensor(ours_mean), tv.tensor(ours_var)) if as_tensor else (ours_mean, ours_var)
    arrays_before = [b.data if as_tensor else b for b in buffers]
    torch_mean, torch_var = torch.from_numpy(ours_mean.copy()), torch.from_numpy(ours_var.copy())
    for step in range(4):
        x = randn(5, c, 2, 3, dtype=dtype, seed=10 + step) * (step + 1) + step
        F.batch_norm(tv.tensor(x), *buffers, training=True, momentum=momentum)
        TF.batch_norm(torch.tensor(x), torch_mean, torch_var, training=True, momentum=momentum)
    got_mean, got_var = (b.numpy() for b in buffers) if as_tensor else buffers
    np.testing.assert_allclose(got_mean, torch_mean.numpy(), **tol(dtype))
    np.testing.assert_allclose(got_var, torch_var.numpy(), **tol(dtype))
    for b, before in zip(buffers, arrays_before):  # updated in place, not replaced
        assert (b.data if as_tensor else b) is before


def test_batch_norm_gradcheck():
    for shape in BN_SHAPES:
        c = shape[1]
        gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
                  randn(*shape), randn(c, seed=1), randn(c, seed=2))
        gradcheck(lambda x, w, b: F.batch_norm(x, np.zeros(c), np.full(c, 2.0), w, b),
                  randn(*shape), randn(c, seed=1), randn(c, seed=2))


# ----------------------------------------------------------------------------- layer / group norm
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,normalized", [((4, 7), 7), ((2, 3, 4, 5), (4, 5)), ((2, 3, 6), (3, 6))])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_matches_torch(dtype, shape, normalized, affine):
    ns = (normalized,) if isinstance(normalized, int) else normalized
    arrays = inputs(shape, ns, dtype, affine)
    check_against_torch(lambda x, *wb: F.layer_norm(x, normalized, *wb, eps=1e-6),
                        lambda x, *wb: TF.layer_norm(x, ns, *wb, eps=1e-6), arrays, scale=CANCEL)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,groups", [((2, 6, 4, 3), 3), ((3, 4, 5), 1), ((2, 4, 3), 4), ((5, 6), 2)])
@pytest.mark.parametrize("affine", [True, False])
def test_group_norm_matches_torch(dtype, shape, groups, affine):
    c = shape[1]
    arrays = inputs(shape, (c,), dtype, affine)
    check_against_torch(lambda x, *wb: F.group_norm(x, groups, *wb),
                        lambda x, *wb: TF.group_norm(x, groups, *wb), arrays, scale=CANCEL)


def test_layer_and_group_norm_gradcheck():
    gradcheck(lambda x, w, b: F.layer_norm(x, (3, 4), w, b), randn(2, 3, 4), randn(3, 4, seed=1), randn(3, 4, seed=2))
    gradcheck(lambda x, w, b: F.group_norm(x, 2, w, b), randn(2, 4, 3, 2), randn(4, seed=1), randn(4, seed=2))


# ----------------------------------------------------------------------------- instance_norm
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 2, 6), (1, 2, 2, 3, 2)])
@pytest.mark.parametrize("affine", [True, False])
def test_instance_norm_matches_torch(dtype, shape, affine):
    c = shape[1]
    arrays = inputs(shape, (c,), dtype, affine)
    names = ["weight", "bias"][:len(arrays) - 1]
    check_against_torch(lambda x, *wb: F.instance_norm(x, **dict(zip(names, wb))),
                        lambda x, *wb: TF.instance_norm(x, **dict(zip(names, wb))), arrays, scale=CANCEL)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("use_input_stats", [True, False])
def test_instance_norm_running_stats_follow_torch(dtype, use_input_stats):
    """Running buffers are updated in place with the instance statistics averaged over N
    (unbiased variance); use_input_stats=False normalises with them instead."""
    x = randn(3, 2, 4, 3, dtype=dtype)
    rm, rv = randn(2, dtype=dtype, seed=3), np.abs(randn(2, dtype=dtype, seed=4)) + 0.5
    ours_rm, ours_rv = tv.tensor(rm.copy()), tv.tensor(rv.copy())
    theirs_rm, theirs_rv = torch.tensor(rm), torch.tensor(rv)
    out = F.instance_norm(tv.tensor(x), ours_rm, ours_rv, use_input_stats=use_input_stats, momentum=0.3)
    expected = TF.instance_norm(torch.tensor(x), theirs_rm, theirs_rv, use_input_stats=use_input_stats, momentum=0.3)
    np.testing.assert_allclose(out.numpy(), expected.numpy(), **tol(dtype, CANCEL))
    np.testing.assert_allclose(ours_rm.numpy(), theirs_rm.numpy(), **tol(dtype))
    np.testing.assert_allclose(ours_rv.numpy(), theirs_rv.numpy(), **tol(dtype))


def test_instance_norm_gradcheck_and_bad_input():
    gradcheck(lambda x, w, b: F.instance_norm(x, weight=w, bias=b), randn(2, 3, 3, 2), randn(3, seed=1),
              randn(3, seed=2))
    with pytest.raises(ValueError, match=r"instance_norm: input must be \(N, C, \*\) with at least one spatial "
                                         r"dim, got shape \(2, 3\)"):
        F.instance_norm(tv.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"instance_norm: expected more than 1 spatial element"):
        F.instance_norm(tv.zeros((2, 3, 1)))
    with pytest.raises(ValueError, match=r"instance_norm: running_mean has shape \(2,\).*needs \(3,\)"):
        F.instance_norm(tv.zeros((2, 3, 4)), tv.zeros(2), tv.ones(3))


@settings(max_examples=15)
@given(n=st.integers(2, 4), c=st.integers(1, 4), groups_pick=st.integers(0, 3),
       spatial=st.lists(st.integers(1, 4), min_size=0, max_size=2), dtype=st.sampled_from(DTYPES))
def test_norms_over_shapes(n, c, groups_pick, spatial, dtype):
    shape = (n, c, *spatial)
    x, w, b = randn(*shape, dtype=dtype), randn(c, dtype=dtype, seed=1), randn(c, dtype=dtype, seed=2)
    check_against_torch(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
                        lambda x, w, b: TF.batch_norm(x, None, None, w, b, training=True), [x, w, b],
                        scale=CANCEL)
    # A group of one element has x - mean = 0 and var = 0: our input gradient is exactly 0,
    # torch's is its rounding noise times 1/sqrt(eps) (~1e-5 in float32), so such groups are
    # left out of the comparison.
    divisors = [g for g in range(1, c + 1) if c % g == 0 and c // g * math.prod(spatial) > 1]
    if divisors:
        groups = divisors[groups_pick % len(divisors)]
        check_against_torch(lambda x, w, b: F.group_norm(x, groups, w, b),
                            lambda x, w, b: TF.group_norm(x, groups, w, b), [x, w, b],
                            scale=CANCEL)
    ns = shape[1:]
    if math.prod(ns) > 1:
        check_against_torch(lambda x: F.layer_norm(x, ns), lambda x: TF.layer_norm(x, ns), [x],
                            scale=CANCEL)


# ----------------------------------------------------------------------------- LRN
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 7, 3, 4), (3, 6, 5), (1, 4, 2, 2, 2)])
@pytest.mark.parametrize("size,alpha,beta,k", [(5, 1e-4, 0.75, 1.0), (4, 5e-4, 0.75, 2.0),
                                               (1, 0.3, 0.5, 1.0), (9, 0.5, 1.2, 0.7)])
def test_local_response_norm_matches_torch(dtype, shape, size, alpha, beta, k):
    x = randn(*shape, dtype=dtype) * 3  # large enough that the alpha term matters
    check_against_torch(lambda x: F.local_response_norm(x, size, alpha, beta, k),
                        lambda x: TF.local_response_norm(x, size, alpha, beta, k), [x])


def test_local_response_norm_gradcheck():
    for size in (3, 4):
        gradcheck(lambda x: F.local_response_norm(x, size, alpha=0.5, beta=0.75, k=1.5), randn(2, 6, 2, 3))


# ----------------------------------------------------------------------------- normalize / embedding
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p,dim", [(2.0, 1), (1.0, -1), (3.0, 0)])
def test_normalize_matches_torch(dtype, p, dim):
    x = randn(4, 5, 3, dtype=dtype)
    x[0, :, 0] = 0  # an all-zero slice: divided by eps, gradient finite
    check_against_torch(lambda x: F.normalize(x, p, dim), lambda x: TF.normalize(x, p, dim), [x])


def test_normalize_gradcheck():
    gradcheck(lambda x: F.normalize(x, 2.0, 1), randn(3, 4))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding_idx", [None, 2, -1])
def test_embedding_matches_torch(dtype, padding_idx):
    index = np.array([[0, 2, 4, 2], [4, 4, 1, 0]], dtype=np.int64)  # repeats: gradients add up
    weight = randn(5, 3, dtype=dtype)
    check_against_torch(lambda i, w: F.embedding(i, w, padding_idx),
                        lambda i, w: TF.embedding(i, w, padding_idx), [index, weight])


def test_embedding_gradcheck():
    index = tv.tensor(np.array([1, 3, 1, 0]))
    # no padding_idx: its row gets no gradient by definition, which finite differences would see
    gradcheck(lambda w: F.embedding(index, w), randn(4, 2))


# ----------------------------------------------------------------------------- bad input
def _raises(match, fn):
    with pytest.raises((ValueError, IndexError, TypeError), match=match):
        fn()


def test_errors_name_the_argument_and_shapes():
    x = tv.tensor(randn(2, 3, 4, 4))
    _raises(r"running_mean has shape \(4,\).*\(2, 3, 4, 4\)", lambda: F.batch_norm(x, np.zeros(4), np.ones(3)))
    _raises(r"weight has shape \(2,\).*\(2, 3, 4, 4\)",
            lambda: F.batch_norm(x, None, None, tv.tensor(np.ones(2)), training=True))
    _raises(r"more than 1 value per channel.*\(1, 3\)", lambda: F.batch_norm(tv.tensor(randn(1, 3)), None, None, training=True))
    _raises(r"running_mean and running_var are required", lambda: F.batch_norm(x, None, None))
    _raises(r"normalized_shape \(3, 4\).*\(2, 3, 4, 4\)", lambda: F.layer_norm(x, (3, 4)))
    _raises(r"weight has shape \(4,\).*normalized_shape", lambda: F.layer_norm(x, (4, 4), tv.tensor(np.ones(4))))
    _raises(r"num_groups=2 must divide.*C=3.*\(2, 3, 4, 4\)", lambda: F.group_norm(x, 2))
    _raises(r"3 or more dims.*\(2, 3\)", lambda: F.local_response_norm(tv.tensor(randn(2, 3)), 3))
    _raises(r"indices must be in \[0, 2\].*\(3, 2\).*\[0, 5\]",
            lambda: F.embedding(tv.tensor(np.array([0, 5])), tv.tensor(randn(3, 2))))
    _raises(r"padding_idx 3 is out of range", lambda: F.embedding(tv.tensor(np.array([0])), tv.tensor(randn(3, 2)), 3))
