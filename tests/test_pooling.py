"""Pooling: every rung against PyTorch (float32 and float64, forward and backward, Hypothesis
over the window arguments), the Numba and CuPy rungs against the reference, float64
gradcheck, PyTorch's edge cases, bad input, and the Numba kernels under NUMBA_BOUNDSCHECK."""
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tinyvision as tv
import tinyvision.nn.functional as F
from tests.conftest import requires_gpu
from tests.boundscheck import run_under_boundscheck
from tests.helpers import DTYPES, check_against_torch, tol
from tinyvision.kernels import dispatch
from tinyvision.kernels.reference import pooling as ref

CPU_RUNGS = ["reference", "cpu"]


def distinct(shape, dtype, seed=0):
    """Values without ties (a permutation of 0..n-1, scaled), so the argmax is unique and
    gradcheck's +-1e-6 steps never change which pixel wins."""
    n = int(np.prod(shape))
    return (np.random.default_rng(seed).permutation(n).reshape(shape) / n - 0.5).astype(dtype)


@st.composite
def windows(draw, dilated=True):
    """A valid (shape, kernel_size, stride, padding, dilation, ceil_mode) for a 2-D pool."""
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilated else (1, 1)
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    ceil_mode = draw(st.booleans())
    return shape, kernel, stride, padding, dilation, ceil_mode


def output_ok(shape, kernel, stride, padding, dilation, ceil_mode):
    """The output is non-empty and every window holds an input pixel (with dilation a window
    can fall entirely in the padding; torch's index and gradient are undefined there, see
    test_window_with_no_input_pixel_gives_minus_inf_and_index_minus_one)."""
    from tinyvision.kernels.reference.conv import conv_output_size

    for n, k, s, p, d in zip(shape[-2:], kernel, stride, padding, dilation):
        out = conv_output_size(n, k, s, p, d, ceil_mode)
        taps = np.arange(out)[:, None] * s - p + np.arange(k)[None, :] * d
        if out < 1 or not ((taps >= 0) & (taps < n)).any(axis=1).all():
            return False
    return True


# --------------------------------------------------------------------------- against torch

@pytest.mark.parametrize("rung", CPU_RUNGS)
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=20)
@given(case=windows())
def test_max_pool2d_matches_torch(rung, dtype, case):
    shape, k, s, p, d, ceil_mode = case
    assume(output_ok(*case))
    x = distinct(shape, dtype)
    args = dict(kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil_mode)
    with dispatch.use(rung):
        check_against_torch(lambda t: F.max_pool2d(t, **args), lambda t: TF.max_pool2d(t, **args), [x])
        _, ours = F.max_pool2d(tv.tensor(x), return_indices=True, **args)
    values, theirs = TF.max_pool2d(torch.tensor(x), return_indices=True, **args)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


@pytest.mark.parametrize("rung", CPU_RUNGS)
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=20)
@given(case=windows(dilated=False), count_include_pad=st.booleans(), divisor=st.sampled_from([None, 3, -2]))
def test_avg_pool2d_matches_torch(rung, dtype, case, count_include_pad, divisor):
    shape, k, s, p, _, ceil_mode = case
    assume(output_ok(*case))
    x = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    args = dict(kernel_size=k, stride=s, padding=p, ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                divisor_override=divisor)
    with dispatch.use(rung):
        check_against_torch(lambda t: F.avg_pool2d(t, **args), lambda t: TF.avg_pool2d(t, **args), [x])


@pytest.mark.parametrize("rung", CPU_RUNGS)
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=15)
@given(h=st.integers(1, 9), w=st.integers(1, 9), oh=st.integers(1, 10), ow=st.integers(1, 10))
def test_adaptive_pools_match_torch(rung, dtype, h, w, oh, ow):
    x = distinct((2, 3, h, w), dtype)
    with dispatch.use(rung):
        check_against_torch(lambda t: F.adaptive_avg_pool2d(t, (oh, ow)),
                            lambda t: TF.adaptive_avg_pool2d(t, (oh, ow)), [x])
        check_against_torch(lambda t: F.adaptive_max_pool2d(t, (oh, ow)),
                            lambda t: TF.adaptive_max_pool2d(t, (oh, ow)), [x])
        _, ours = F.adaptive_max_pool2d(tv.tensor(x), (oh, ow), return_indices=True)
    np.testing.assert_array_equal(ours.numpy(), TF.adaptive_max_pool2d(torch.tensor(x), (oh, ow), True)[1].numpy())


@pytest.mark.parametrize("dtype", DTYPES)
def test_unbatched_input_and_none_output_size(dtype):
    x = distinct((3, 7, 6), dtype)
    check_against_torch(lambda t: F.max_pool2d(t, 3, 2, 1), lambda t: TF.max_pool2d(t, 3, 2, 1), [x])
    check_against_torch(lambda t: F.adaptive_avg_pool2d(t, (None, 2)),
                        lambda t: TF.adaptive_avg_pool2d(t, (None, 2)), [x])


# --------------------------------------------------------------------------- rungs against the reference

CONFIGS = [  # (shape, kernel, stride, padding, dilation, ceil_mode): the fast paths and their borders
    ((2, 3, 8, 8), (2, 2), (2, 2), (0, 0), (1, 1), False),
    ((2, 3, 7, 9), (2, 2), (2, 2), (0, 0), (1, 1), True),    # odd sizes: 2x2 windows hang over the edge
    ((2, 3, 8, 8), (3, 3), (2, 2), (1, 1), (1, 1), False),
    ((2, 3, 9, 7), (3, 3), (2, 2), (1, 1), (1, 1), True),
    ((1, 2, 5, 11), (3, 2), (1, 3), (1, 1), (2, 1), True),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,k,s,p,d,ceil_mode", CONFIGS)
def test_cpu_rung_equals_reference(dtype, shape, k, s, p, d, ceil_mode):
    _rung_equals_reference("cpu", np.asarray, dtype, shape, k, s, p, d, ceil_mode)


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,k,s,p,d,ceil_mode", CONFIGS)
def test_gpu_rung_equals_reference(dtype, shape, k, s, p, d, ceil_mode):
    from tinyvision.kernels.compat import cupy

    _rung_equals_reference("gpu", cupy.asarray, dtype, shape, k, s, p, d, ceil_mode)


def _rung_equals_reference(rung, to_device, dtype, shape, k, s, p, d, ceil_mode):
    import importlib

    from tinyvision.kernels.reference.conv import conv_output_size
    from tinyvision.kernels.compat import to_numpy

    fast = importlib.import_module(f"tinyvision.kernels.{rung}.pooling")
    x = np.random.default_rng(2).standard_normal(shape).astype(dtype)
    out = tuple(conv_output_size(n, *a, ceil_mode=ceil_mode) for n, *a in zip(shape[-2:], k, s, p, d))
    g = np.random.default_rng(3).standard_normal(shape[:2] + out).astype(dtype)
    X, G = to_device(x), to_device(g)
    y, idx = ref.max_pool2d_forward(x, k, s, p, d, out)
    y2, idx2 = fast.max_pool2d_forward(X, k, s, p, d, out)
    np.testing.assert_array_equal(to_numpy(y2), y)
    np.testing.assert_array_equal(to_numpy(idx2), idx)
    np.testing.assert_allclose(to_numpy(fast.max_pool2d_backward(G, to_device(idx), shape)),
                               ref.max_pool2d_backward(g, idx, shape), **tol(dtype))
    if d == (1, 1):
        for cip in (True, False):
            np.testing.assert_allclose(to_numpy(fast.avg_pool2d_forward(X, k, s, p, out, cip, None)),
                                       ref.avg_pool2d_forward(x, k, s, p, out, cip, None), **tol(dtype))
            np.testing.assert_allclose(to_numpy(fast.avg_pool2d_backward(G, shape, k, s, p, cip, None)),
                                       ref.avg_pool2d_backward(g, shape, k, s, p, cip, None), **tol(dtype))
    np.testing.assert_allclose(to_numpy(fast.adaptive_avg_pool2d_forward(X, out)),
                               ref.adaptive_avg_pool2d_forward(x, out), **tol(dtype))
    np.testing.assert_allclose(to_numpy(fast.adaptive_avg_pool2d_backward(G, shape)),
                               ref.adaptive_avg_pool2d_backward(g, shape), **tol(dtype))
    ya, ia = ref.adaptive_max_pool2d_forward(x, out)
    ya2, ia2 = fast.adaptive_max_pool2d_forward(X, out)
    np.testing.assert_array_equal(to_numpy(ya2), ya)
    np.testing.assert_array_equal(to_numpy(ia2), ia)


# --------------------------------------------------------------------------- gradcheck (float64)

@pytest.mark.parametrize("rung", CPU_RUNGS)
def test_gradcheck(rung):
    x = tv.tensor(distinct((1, 2, 5, 6), np.float64), requires_grad=True)
    with dispatch.use(rung):
        tv.gradcheck(lambda t: F.max_pool2d(t, 3, 2, 1, ceil_mode=True), [x])
        tv.gradcheck(lambda t: F.max_pool2d(t, (2, 3), (1, 2), (1, 0), dilation=(2, 1)), [x])
        tv.gradcheck(lambda t: F.avg_pool2d(t, 3, 2, 1, ceil_mode=True, count_include_pad=False), [x])
        tv.gradcheck(lambda t: F.adaptive_avg_pool2d(t, (3, 4)), [x])
        tv.gradcheck(lambda t: F.adaptive_max_pool2d(t, (2, 4)), [x])


# --------------------------------------------------------------------------- edge cases (PyTorch's behaviour)

EDGES = [
    dict(shape=(1, 1, 2, 2), kernel_size=3, stride=1, padding=1),                  # kernel > unpadded input
    dict(shape=(1, 2, 7, 7), kernel_size=2, stride=3, padding=0),                  # stride > kernel
    dict(shape=(1, 1, 5, 5), kernel_size=2, stride=2, padding=1, ceil_mode=True),  # a 4th window would start in the padding
    dict(shape=(1, 1, 6, 4), kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(shape=(2, 1, 1, 1), kernel_size=1),                                       # single pixel
    dict(shape=(2, 3, 4, 5), kernel_size=(4, 5)),                                  # global pool: 1x1 output
]


@pytest.mark.parametrize("rung", CPU_RUNGS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", EDGES)
def test_edge_cases_match_torch(rung, dtype, case):
    case = dict(case)
    x = distinct(case.pop("shape"), dtype)
    with dispatch.use(rung):
        check_against_torch(lambda t: F.max_pool2d(t, **case), lambda t: TF.max_pool2d(t, **case), [x])
        check_against_torch(lambda t: F.avg_pool2d(t, **case), lambda t: TF.avg_pool2d(t, **case), [x])
        check_against_torch(lambda t: F.avg_pool2d(t, count_include_pad=False, **case),
                            lambda t: TF.avg_pool2d(t, count_include_pad=False, **case), [x])


def test_ceil_mode_drops_a_window_that_starts_in_the_padding():
    x = tv.zeros((1, 1, 5, 5))
    assert F.max_pool2d(x, 2, 2, 1, ceil_mode=True).shape == TF.max_pool2d(torch.zeros(1, 1, 5, 5), 2, 2, 1,
                                                                            ceil_mode=True).shape == (1, 1, 3, 3)


@pytest.mark.parametrize("rung", CPU_RUNGS)
def test_window_with_no_input_pixel_gives_minus_inf_and_index_minus_one(rung):
    # H = W = 1, kernel 2 dilated by 2, padding 1: the only window taps pixels -1 and 1, both padding
    x = tv.tensor(np.ones((1, 1, 1, 1)), requires_grad=True)
    with dispatch.use(rung):
        y, idx = F.max_pool2d(x, 2, 1, 1, dilation=2, return_indices=True)
        y.sum().backward()
    assert np.isneginf(y.detach().numpy()).all() and (idx.numpy() == -1).all()
    assert np.isneginf(TF.max_pool2d(torch.ones(1, 1, 1, 1), 2, 1, 1, dilation=2).numpy()).all()  # torch: -inf too
    np.testing.assert_array_equal(x.grad.numpy(), 0.0)


# --------------------------------------------------------------------------- bad input

def test_bad_input_names_the_arguments():
    x = tv.zeros((1, 1, 3, 3))
    with pytest.raises(ValueError, match=r"output size .*kernel_size=\(5, 5\).*padding=\(0, 0\)"):
        F.max_pool2d(x, 5)
    with pytest.raises(ValueError, match=r"output size .*kernel_size=\(4, 4\)"):
        F.avg_pool2d(x, 4, stride=1)
    with pytest.raises(ValueError, match="padding should be at most half"):
        F.max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        F.avg_pool2d(x, 2, stride=0)
    with pytest.raises(ValueError, match=r"kernel_size must be an int or a pair of ints, got \(2, 2, 2\)"):
        F.max_pool2d(x, (2, 2, 2))
    with pytest.raises(TypeError, match="kernel_size must be an int or a pair"):
        F.max_pool2d(x, 2.0)
    with pytest.raises(ValueError, match=r"got shape \(3, 3\)"):
        F.max_pool2d(tv.zeros((3, 3)), 2)
    with pytest.raises(ValueError, match="output_size must be >= 1"):
        F.adaptive_avg_pool2d(x, (0, 2))
    with pytest.raises(ValueError, match="divisor_override"):
        F.avg_pool2d(x, 2, divisor_override=0)


# --------------------------------------------------------------------------- Numba bounds

BOUNDS_SCRIPT = textwrap.dedent("""
    import tinyvision as tv
    import tinyvision.nn.functional as F
    from tinyvision.kernels import dispatch

    cases = [((1, 1, 1, 1), 1, 1, 0, 1, False), ((1, 1, 1, 1), 2, 1, 1, 2, False),
             ((2, 2, 2, 3), 3, 1, 1, 1, True), ((1, 1, 7, 7), 2, 3, 0, 1, True),
             ((1, 1, 5, 5), 2, 2, 1, 1, True), ((2, 2, 8, 8), 2, 2, 0, 1, False),
             ((2, 2, 7, 9), 2, 2, 0, 1, True), ((2, 2, 9, 8), 3, 2, 1, 1, True),
             ((2, 2, 2, 2), 3, 2, 1, 1, False), ((1, 1, 5, 11), (3, 2), (1, 3), 1, (2, 1), True),
             ((1, 1, 7, 9), 2, 2, 0, 1, False), ((1, 1, 1, 1), 3, 2, 1, 1, False), ((1, 2, 3, 2), 3, 2, 1, 1, True)]
    with dispatch.use("cpu"):
        for shape, k, s, p, d, ceil in cases:
            x = tv.randn(*shape, requires_grad=True)
            F.max_pool2d(x, k, s, p, d, ceil_mode=ceil).sum().backward()
            if d == 1:
                F.avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=False).sum().backward()
            for out in [(1, 1), shape[-2:], (shape[-2] + 2, 3)]:
                F.adaptive_avg_pool2d(x, out).sum().backward()
                F.adaptive_max_pool2d(x, out).sum().backward()
""")


def test_numba_kernels_stay_in_bounds():
    """Every Numba pooling kernel, compiled with bounds checks, over edge-case shapes."""
    run_under_boundscheck(BOUNDS_SCRIPT)


@pytest.mark.parametrize("size", [2.5, "a", {2: 2}])
def test_adaptive_pool_output_size_of_the_wrong_type_is_named(size):
    """A float output_size used to fail inside tuple() with "'float' object is not iterable"."""
    with pytest.raises(TypeError, match="adaptive_avg_pool2d: output_size must be an int or a pair"):
        F.adaptive_avg_pool2d(tv.ones((1, 1, 4, 4)), size)
