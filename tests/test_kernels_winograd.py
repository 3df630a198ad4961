"""Winograd convolution (kernels/reference/winograd.py, kernels/cpu/winograd.py) and the table
in kernels/cpu/conv.py that picks it.

Oracles: the im2col reference (itself checked against torch in test_kernels_conv.py) on random
shapes and paddings, float32 and float64, forward and input gradient; torch directly on one
ResNet-sized layer; for the shapes Winograd does not apply to (stride, dilation, groups, other
kernel sizes) the forced algorithm must fall back to im2col and still match. Tolerances are
test_kernels_conv.py's (10x the per-dtype elementwise one), except F(4x4, 3x3) in float32:
its transforms amplify rounding (constants up to 8 and 1/24), measured ~10x im2col's error,
so it gets 10x more (docs/convolution.md has the figures).
"""
from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyvision.kernels.cpu import conv as cpu
from tinyvision.kernels.dispatch import use_algorithm
from tinyvision.kernels.reference import conv as ref
from tinyvision.kernels.reference import winograd
from tests.boundscheck import run_under_boundscheck
from tests.helpers import DTYPES, tol

SUM_SCALE = 10


def _scale(dtype, m: int) -> float:
    return SUM_SCALE * (10 if (m == 4 and dtype == np.float32) else 1)


@st.composite
def winograd_cases(draw):
    """A stride-1 3x3 conv Winograd applies to: shapes 1..10 with every padding 0..2."""
    n, c, o = draw(st.integers(1, 2)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, 3 - 2 * ph), 10))
    w = draw(st.integers(max(1, 3 - 2 * pw), 10))
    return (n, c, h, w), (o, c, 3, 3), (ph, pw)


def _arrays(x_shape, w_shape, padding, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    args = ((1, 1), padding, (1, 1), 1)
    grad = rng.standard_normal(ref.conv2d_forward(x, w, *args).shape).astype(dtype)
    return x, w, grad, args


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=10)
@given(case=winograd_cases())
def test_reference_winograd_matches_im2col(case, dtype, m):
    x, w, grad, args = _arrays(*case, dtype)
    t = tol(dtype, _scale(dtype, m))
    y = winograd.winograd_conv2d_forward(x, w, args[1], m)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, ref.conv2d_forward(x, w, *args), **t)
    dx = winograd.winograd_conv2d_backward_input(grad, w, args[1], m)
    np.testing.assert_allclose(dx, ref.conv2d_backward_input(grad, w, x.shape, *args), **t)


@pytest.mark.parametrize("algorithm", ["winograd2", "winograd4"])
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=10)
@given(case=winograd_cases())
def test_cpu_winograd_matches_reference(case, dtype, algorithm):
    """Forward, input gradient and (still im2col) weight gradient of the CPU rung, forced."""
    x, w, grad, args = _arrays(*case, dtype)
    t = tol(dtype, _scale(dtype, cpu.WINOGRAD_TILE[algorithm]))
    with use_algorithm("conv", algorithm):
        assert cpu.algorithm(x.shape, w.shape, *args) == algorithm
        got = {"forward": cpu.conv2d_forward(x, w, *args),
               "input grad": cpu.conv2d_backward_input(grad, w, x.shape, *args),
               "weight grad": cpu.conv2d_backward_weight(grad, x, w.shape, *args)}
    want = {"forward": ref.conv2d_forward(x, w, *args),
            "input grad": ref.conv2d_backward_input(grad, w, x.shape, *args),
            "weight grad": ref.conv2d_backward_weight(grad, x, w.shape, *args)}
    for name in got:
        assert got[name].dtype == dtype, name
        np.testing.assert_allclose(got[name], want[name], **t, err_msg=name)


@st.composite
def other_convs(draw):
    """Convs Winograd does not apply to: some stride, dilation, groups or kernel size differs."""
    groups = draw(st.sampled_from([1, 2]))
    cg, og = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    k = draw(st.sampled_from([(3, 3), (1, 1), (5, 5), (3, 2)]))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    if groups == 1 and k == (3, 3) and stride == dilation == (1, 1) and max(padding) <= 2:
        stride = (2, 1)
    h = draw(st.integers(dilation[0] * (k[0] - 1) + 1, 9))
    w = draw(st.integers(dilation[1] * (k[1] - 1) + 1, 9))
    return (2, groups * cg, h, w), (groups * og, cg) + k, stride, padding, dilation, groups


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=10)
@given(case=other_convs())
def test_forced_winograd_falls_back_where_it_does_not_apply(case, dtype):
    x_shape, w_shape, *args = case
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(w_shape).astype(dtype)
    grad = rng.standard_normal(ref.conv2d_forward(x, w, *args).shape).astype(dtype)
    with use_algorithm("conv", "winograd4"):
        assert cpu.algorithm(x_shape, w_shape, *args) == "im2col"
        y = cpu.conv2d_forward(x, w, *args)
        dx = cpu.conv2d_backward_input(grad, w, x_shape, *args)
    np.testing.assert_allclose(y, ref.conv2d_forward(x, w, *args), **tol(dtype, SUM_SCALE))
    np.testing.assert_allclose(dx, ref.conv2d_backward_input(grad, w, x_shape, *args), **tol(dtype, SUM_SCALE))


def test_table_picks_per_shape():
    s = ((1, 1), (1, 1), (1, 1), 1)
    assert cpu.algorithm((8, 3, 32, 32), (64, 3, 3, 3), *s) == "im2col"          # RGB stem: few channels
    assert cpu.algorithm((8, 64, 32, 32), (64, 64, 3, 3), *s) == "winograd4"     # ResNet stage 1
    assert cpu.algorithm((8, 128, 16, 16), (128, 128, 3, 3), *s) == "winograd4"  # stage 2
    assert cpu.algorithm((8, 256, 8, 8), (256, 256, 3, 3), *s) == "im2col"       # small maps: im2col measured faster
    assert cpu.algorithm((8, 64, 32, 32), (64, 64, 3, 3), (2, 2), (1, 1), (1, 1), 1) == "im2col"
    with pytest.raises(ValueError, match="use_algorithm"):
        with use_algorithm("conv", "fft"):
            pass


@pytest.mark.parametrize("algorithm", ["winograd2", "winograd4"])
def test_resnet_layer_matches_torch(algorithm):
    """One 64-channel layer, forward and both gradients, float32, against torch directly."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 64, 10, 10)).astype(np.float32)
    w = (rng.standard_normal((64, 64, 3, 3)) / 24).astype(np.float32)
    args = ((1, 1), (1, 1), (1, 1), 1)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    yt = TF.conv2d(xt, wt, padding=1)
    grad = rng.standard_normal(yt.shape).astype(np.float32)
    yt.backward(torch.tensor(grad))
    t = tol(np.float32, _scale(np.float32, cpu.WINOGRAD_TILE[algorithm]))
    with use_algorithm("conv", algorithm):
        np.testing.assert_allclose(cpu.conv2d_forward(x, w, *args), yt.detach().numpy(), **t)
        np.testing.assert_allclose(cpu.conv2d_backward_input(grad, w, x.shape, *args), xt.grad.numpy(), **t)


def test_float32_error_is_as_documented():
    """docs/convolution.md: against float64, F(2x2, 3x3) in float32 is as accurate as im2col,
    F(4x4, 3x3) about 10x less (max error relative to the largest output, 64 channels)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 64, 16, 16))
    w = rng.standard_normal((64, 64, 3, 3)) / 24
    args = ((1, 1), (1, 1), (1, 1), 1)
    exact = ref.conv2d_forward(x, w, *args)
    err = {}
    for name in cpu.ALGORITHMS:
        with use_algorithm("conv", name):
            y = cpu.conv2d_forward(x.astype(np.float32), w.astype(np.float32), *args)
        err[name] = np.abs(y - exact).max() / np.abs(exact).max()
    assert err["im2col"] < 2e-6 and err["winograd2"] < 2e-6
    assert 2 * err["im2col"] < err["winograd4"] < 3e-5


WINOGRAD_BOUNDSCHECK = textwrap.dedent("""
    import numpy as np
    from tinyvision.kernels.cpu import conv as cpu
from tinyvision.kernels.dispatch import use_algorithm

    rng = np.random.default_rng(0)
    for name in ("winograd2", "winograd4"):
        for xs, p in [((1, 1, 1, 1), (1, 1)), ((2, 3, 5, 7), (0, 2)), ((1, 2, 9, 4), (2, 0)), ((1, 2, 3, 3), (0, 0))]:
            x, w = rng.standard_normal(xs), rng.standard_normal((3, xs[1], 3, 3))
            with use_algorithm("conv", name):
                y = cpu.conv2d_forward(x, w, (1, 1), p, (1, 1), 1)
                cpu.conv2d_backward_input(np.ones(y.shape), w, xs, (1, 1), p, (1, 1), 1)
""")


@pytest.mark.slow
def test_winograd_kernels_stay_in_bounds():
    run_under_boundscheck(WINOGRAD_BOUNDSCHECK)
