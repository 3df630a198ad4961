"""functional/sampling.py: grid_sample and affine_grid against torch (float32 and float64,
forward and the gradients w.r.t. input, grid and theta) over Hypothesis shapes and every
mode / padding_mode / align_corners, float64 finite differences, and bad input."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyvision as tv
from tests.conftest import requires_gpu
from tests.helpers import check_against_torch, check_op, tol

F = tv.nn.functional
VARIANTS = list(itertools.product(["bilinear", "nearest"], ["zeros", "border", "reflection"], [False, True]))


@st.composite
def sample_case(draw):
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    h, w, ho, wo = (draw(st.integers(1, 5)) for _ in range(4))
    return (n, c, h, w), (n, ho, wo, 2), draw(st.integers(0, 2**16))


@pytest.mark.parametrize("mode, padding_mode, align_corners", VARIANTS)
@settings(max_examples=4)
@given(case=sample_case())
def test_grid_sample_matches_torch_and_gradcheck(mode, padding_mode, align_corners, case):
    x_shape, g_shape, seed = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape)
    grid = rng.uniform(-1.5, 1.5, g_shape)  # past the borders too, so padding_mode matters
    kw = dict(mode=mode, padding_mode=padding_mode, align_corners=align_corners)
    # nearest is piecewise constant in the grid: its gradient there is 0 (compared with torch,
    # but finite differences across a rounding boundary would be meaningless)
    grad = [True, mode == "bilinear"]
    check_op(lambda a, g: F.grid_sample(a, g, **kw), lambda a, g: TF.grid_sample(a, g, **kw), [x, grid],
             requires_grad=grad)
    if mode == "nearest":
        check_against_torch(lambda a, g: F.grid_sample(a, g, **kw), lambda a, g: TF.grid_sample(a, g, **kw),
                            [x, grid], requires_grad=[True, True])


def test_grid_sample_identity_grid_reproduces_the_input():
    """affine_grid of the identity with align_corners=False samples every pixel at its centre."""
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    theta = tv.tensor(np.tile(np.eye(2, 3), (2, 1, 1)))
    out = F.grid_sample(tv.tensor(x), F.affine_grid(theta, (2, 3, 4, 5), align_corners=False), align_corners=False)
    np.testing.assert_allclose(out.numpy(), x, atol=1e-12)


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("size", [(2, 3, 4, 5), (1, 1, 1, 3), (2, 1, 2, 3, 4)])
def test_affine_grid_matches_torch_and_gradcheck(size, align_corners):
    k = len(size) - 2
    theta = np.random.default_rng(1).standard_normal((size[0], k, k + 1))
    check_op(lambda t: F.affine_grid(t, size, align_corners=align_corners),
             lambda t: TF.affine_grid(t, size, align_corners=align_corners), [theta])


def test_spatial_transformer_end_to_end_gradient_matches_torch():
    """theta -> affine_grid -> grid_sample: the gradient reaches theta through the grid."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 2, 5, 6))
    theta = np.tile(np.eye(2, 3), (2, 1, 1)) + 0.2 * rng.standard_normal((2, 2, 3))

    def stn(lib, a, t):
        f = F if lib is tv else TF
        return f.grid_sample(a, f.affine_grid(t, (2, 2, 4, 3), align_corners=False), padding_mode="border",
                             align_corners=False)
    check_op(lambda a, t: stn(tv, a, t), lambda a, t: stn(torch, a, t), [x, theta])


def test_bad_input_is_named():
    x, g = tv.zeros((2, 3, 4, 4)), tv.zeros((2, 5, 5, 2))
    with pytest.raises(ValueError, match=r"grid_sample: grid must have shape \(N, H_out, W_out, 2\) with N = 2 "
                                         r"\(input \(2, 3, 4, 4\)\), got grid of shape \(2, 5, 5, 3\)"):
        F.grid_sample(x, tv.zeros((2, 5, 5, 3)))
    with pytest.raises(ValueError, match=r"grid_sample: grid must have shape .*got grid of shape \(1, 5, 5, 2\)"):
        F.grid_sample(x, tv.zeros((1, 5, 5, 2)))
    with pytest.raises(ValueError, match=r"grid_sample: input must be 4-D \(N, C, H, W\), got shape \(3, 4, 4\)"):
        F.grid_sample(tv.zeros((3, 4, 4)), g)
    with pytest.raises(ValueError, match="grid_sample: mode must be one of .*got 'bicubic'"):
        F.grid_sample(x, g, mode="bicubic")
    with pytest.raises(ValueError, match="grid_sample: padding_mode must be one of .*got 'circular'"):
        F.grid_sample(x, g, padding_mode="circular")
    with pytest.raises(TypeError, match="grid_sample: input must be a floating-point tensor.*int64"):
        F.grid_sample(tv.tensor(np.zeros((2, 3, 4, 4), dtype=np.int64)), g)
    with pytest.raises(TypeError, match="grid_sample: grid is float64 but input is float32"):
        F.grid_sample(x, tv.tensor(np.zeros((2, 5, 5, 2))))
    with pytest.raises(ValueError, match=r"affine_grid: theta must have shape \(N, 2, 3\) = \(2, 2, 3\) for size "
                                         r"\(2, 3, 4, 4\), got \(2, 3, 3\)"):
        F.affine_grid(tv.zeros((2, 3, 3)), (2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"affine_grid: size must be \(N, C, H, W\) or \(N, C, D, H, W\)"):
        F.affine_grid(tv.zeros((2, 2, 3)), (2, 4, 4))


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("mode, padding_mode, align_corners", VARIANTS)
def test_gpu_grid_sample_matches_torch(mode, padding_mode, align_corners):
    """The same NumPy formulation on CuPy arrays (gathers, cupyx scatter_add) vs torch on the CPU."""
    rng = np.random.default_rng(3)
    x, grid = rng.standard_normal((2, 3, 5, 4)), rng.uniform(-1.5, 1.5, (2, 4, 3, 2))
    kw = dict(mode=mode, padding_mode=padding_mode, align_corners=align_corners)
    xo, go = tv.tensor(x, device="cuda", requires_grad=True), tv.tensor(grid, device="cuda", requires_grad=True)
    xt, gt = torch.tensor(x, requires_grad=True), torch.tensor(grid, requires_grad=True)
    out, expected = F.grid_sample(xo, go, **kw), TF.grid_sample(xt, gt, **kw)
    np.testing.assert_allclose(out.to("cpu").detach().numpy(), expected.detach().numpy(), **tol(np.float64))
    out.sum().backward()
    expected.sum().backward()
    np.testing.assert_allclose(xo.grad.to("cpu").numpy(), xt.grad.numpy(), **tol(np.float64))
    np.testing.assert_allclose(go.grad.to("cpu").numpy(), gt.grad.numpy(), **tol(np.float64))
