"""Differentiable resampling: ``affine_grid`` and ``grid_sample``, as torch (spatial
transformer networks, Jaderberg et al. 2015; deformable attention samples the same way).

``grid_sample(input, grid)`` reads ``input`` (N, C, H, W) at the real-valued locations of
``grid`` (N, Ho, Wo, 2), given as (x, y) in [-1, 1] (-1 the left/top edge, +1 the right/bottom):

1. unnormalise to pixel coordinates: ``align_corners=True`` puts -1 and +1 at the centres of
   the corner pixels, x = (g + 1) / 2 * (W - 1); ``False`` at their outer edges,
   x = ((g + 1) W - 1) / 2 (resolution-independent: what ``interpolate`` does too);
2. bring the coordinate inside (``padding_mode``): 'zeros' leaves it (out-of-range pixels read
   0), 'border' clips it to [0, W - 1], 'reflection' mirrors it at the borders, then clips;
3. interpolate: 'nearest' takes the pixel at round(x) (half to even, as torch); 'bilinear'
   mixes the four neighbours x0 = floor(x), x1 = x0 + 1 (likewise y) with weights
   (x1 - x)(y1 - y), (x - x0)(y1 - y), (x1 - x)(y - y0), (x - x0)(y - y0).

Gradients (grad = dL/dout, (N, C, Ho, Wo)):

* w.r.t. input: each output spreads grad times its four weights back onto the four pixels it
  read (a scatter-add: the adjoint of the gather);
* w.r.t. grid (bilinear only; nearest is piecewise constant, so 0): the output is linear in
  x between the neighbours, d out / d x = (y1 - y)(v_ne - v_nw) + (y - y0)(v_se - v_sw), and
  d out / d y = (x1 - x)(v_sw - v_nw) + (x - x0)(v_se - v_ne), summed over channels with grad;
  then the chain rule through step 2 (1 inside, 0 where clipped, -1 where a reflection
  flipped the direction) and step 1 (a factor (W - 1)/2 or W/2).

Everything below is loop-free NumPy/CuPy: gathers with integer index arrays and one
scatter-add, so a learner can follow each step on small arrays.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from tinyvision.autograd.function import Context, Function
from tinyvision.autograd.tensor import Tensor
from tinyvision.functional import linalg
from tinyvision.functional._util import check_floating
from tinyvision.kernels import compat
from tinyvision.kernels.compat import array_module

MODES = ("bilinear", "nearest")
PADDING_MODES = ("zeros", "border", "reflection")


# --------------------------------------------------------------------------- coordinates
def _unnormalize(g, size: int, align_corners: bool):
    """[-1, 1] -> pixel coordinate, and d(coordinate)/dg."""
    if align_corners:
        return (g + 1) / 2 * (size - 1), (size - 1) / 2
    return ((g + 1) * size - 1) / 2, size / 2


def _clip(x, size: int):
    """Clip to [0, size - 1]; the derivative is 1 inside (bounds included) and 0 outside."""
    xp = array_module(x)
    inside = (x >= 0) & (x <= size - 1)
    return xp.clip(x, 0, size - 1), inside.astype(x.dtype)


def _reflect(x, twice_low: int, twice_high: int):
    """Mirror x into [low, high] (bounds given doubled, so they may be half-integers); the
    derivative is +1 or -1 depending on the number of flips."""
    xp = array_module(x)
    if twice_low == twice_high:
        return xp.zeros_like(x), xp.zeros_like(x)
    low, span = twice_low / 2, (twice_high - twice_low) / 2
    x = x - low
    sign = xp.where(x < 0, -1, 1).astype(x.dtype)
    x = xp.abs(x)
    extra = xp.fmod(x, span)
    flips = xp.floor(x / span)
    even = (flips % 2) == 0
    return xp.where(even, extra + low, span - extra + low), xp.where(even, sign, -sign)


def _source_coordinate(g, size: int, padding_mode: str, align_corners: bool):
    """Grid values along one axis -> pixel coordinates, and d(coordinate)/dg (steps 1 and 2)."""
    x, d = _unnormalize(g, size, align_corners)
    d = array_module(g).full_like(g, d)
    if padding_mode == "border":
        x, inside = _clip(x, size)
        d = d * inside
    elif padding_mode == "reflection":
        x, flip = _reflect(x, 0, 2 * (size - 1)) if align_corners else _reflect(x, -1, 2 * size - 1)
        x, inside = _clip(x, size)
        d = d * flip * inside
    return x, d


# --------------------------------------------------------------------------- gather / scatter
def _gather(x_nhwc, n, iy, ix):
    """x_nhwc (N, H, W, C) at integer (iy, ix) (N, Ho, Wo); out-of-range reads 0 -> (N, Ho, Wo, C)."""
    h, w = x_nhwc.shape[1:3]
    valid = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    v = x_nhwc[n, iy.clip(0, h - 1), ix.clip(0, w - 1)]
    return v * valid[..., None]


def _scatter(dx_nhwc, n, iy, ix, values) -> None:
    """dx_nhwc[n, iy, ix] += values, skipping out-of-range pixels (the adjoint of _gather)."""
    h, w = dx_nhwc.shape[1:3]
    valid = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    n = array_module(iy).broadcast_to(n, iy.shape)
    compat.scatter_add(dx_nhwc, (n[valid], iy[valid], ix[valid]), values[valid])


def _corners(x, y):
    """The four bilinear neighbours and weights: [(iy, ix, weight), ...] for nw, ne, sw, se."""
    xp = array_module(x)
    x0, y0 = xp.floor(x), xp.floor(y)
    fx, fy = x - x0, y - y0  # (x - x0), (y - y0); x1 - x = 1 - fx
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    return [(y0, x0, (1 - fx) * (1 - fy)), (y0, x0 + 1, fx * (1 - fy)),
            (y0 + 1, x0, (1 - fx) * fy), (y0 + 1, x0 + 1, fx * fy)], fx, fy


class GridSample(Function):
    @staticmethod
    def forward(ctx: Context, x, grid, mode, padding_mode, align_corners):
        """x (N, C, H, W), grid (N, Ho, Wo, 2) -> (N, C, Ho, Wo)."""
        xp = array_module(x)
        n_, _, h, w = x.shape
        ix, dix = _source_coordinate(grid[..., 0], w, padding_mode, align_corners)
        iy, diy = _source_coordinate(grid[..., 1], h, padding_mode, align_corners)
        n = xp.arange(n_).reshape(-1, 1, 1)
        x_nhwc = xp.moveaxis(x, 1, -1)
        ctx.save_for_backward(x_nhwc, ix, iy, dix, diy)
        ctx.mode, ctx.n = mode, n
        if mode == "nearest":
            out = _gather(x_nhwc, n, xp.rint(iy).astype(np.int64), xp.rint(ix).astype(np.int64))
        else:
            corners, _, _ = _corners(ix, iy)
            out = sum(_gather(x_nhwc, n, cy, cx) * wt[..., None] for cy, cx, wt in corners)
        return xp.ascontiguousarray(xp.moveaxis(out, -1, 1)).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx: Context, grad):
        x_nhwc, ix, iy, dix, diy = ctx.saved_tensors
        xp = array_module(grad)
        n = ctx.n
        g = xp.moveaxis(grad, 1, -1)  # (N, Ho, Wo, C)
        dx = dgrid = None
        if ctx.mode == "nearest":
            if ctx.needs_input_grad[0]:
                dx = xp.zeros_like(x_nhwc)
                _scatter(dx, n, xp.rint(iy).astype(np.int64), xp.rint(ix).astype(np.int64), g)
            if ctx.needs_input_grad[1]:  # piecewise constant in the grid
                dgrid = xp.zeros(ix.shape + (2,), dtype=grad.dtype)
        else:
            corners, fx, fy = _corners(ix, iy)
            if ctx.needs_input_grad[0]:
                dx = xp.zeros_like(x_nhwc)
                for cy, cx, wt in corners:
                    _scatter(dx, n, cy, cx, g * wt[..., None])
            if ctx.needs_input_grad[1]:
                nw, ne, sw, se = (_gather(x_nhwc, n, cy, cx) for cy, cx, _ in corners)
                fx, fy = fx[..., None], fy[..., None]
                dout_dx = (1 - fy) * (ne - nw) + fy * (se - sw)
                dout_dy = (1 - fx) * (sw - nw) + fx * (se - ne)
                gx = (g * dout_dx).sum(-1) * dix  # sum over channels, then the chain rule
                gy = (g * dout_dy).sum(-1) * diy
                dgrid = xp.stack([gx, gy], axis=-1).astype(grad.dtype, copy=False)
        if dx is not None:
            dx = xp.ascontiguousarray(xp.moveaxis(dx, -1, 1))
        return dx, dgrid, None, None, None


# --------------------------------------------------------------------------- public functions
def grid_sample(input: Tensor, grid: Tensor, mode: str = "bilinear", padding_mode: str = "zeros",
                align_corners: bool | None = None) -> Tensor:
    """Sample ``input`` (N, C, H, W) at ``grid`` (N, Ho, Wo, 2) (x, y in [-1, 1]) ->
    (N, C, Ho, Wo), as ``torch.nn.functional.grid_sample`` (4-D input). ``mode`` 'bilinear'
    or 'nearest'; ``padding_mode`` 'zeros', 'border' or 'reflection'; ``align_corners``
    defaults to False (torch's default, without its warning). Differentiable w.r.t. input
    and (bilinear) grid; see the module docstring for the math."""
    op = "grid_sample"
    if mode not in MODES:
        raise ValueError(f"{op}: mode must be one of {MODES}, got {mode!r}")
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"{op}: padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    check_floating(op, "input", input)
    check_floating(op, "grid", grid)
    if input.ndim != 4:
        raise ValueError(f"{op}: input must be 4-D (N, C, H, W), got shape {input.shape}")
    if grid.ndim != 4 or grid.shape[-1] != 2 or grid.shape[0] != input.shape[0]:
        raise ValueError(f"{op}: grid must have shape (N, H_out, W_out, 2) with N = {input.shape[0]} "
                         f"(input {input.shape}), got grid of shape {grid.shape}")
    if min(input.shape[2:]) < 1:
        raise ValueError(f"{op}: input must have H, W >= 1, got shape {input.shape}")
    if grid.dtype != input.dtype:
        raise TypeError(f"{op}: grid is {grid.dtype} but input is {input.dtype}; they must share one dtype")
    if grid.device != input.device:
        raise RuntimeError(f"{op}: grid is on {grid.device} but input is on {input.device}")
    return GridSample.apply(input, grid, mode, padding_mode, bool(align_corners))


def _base_grid(size: Sequence[int], align_corners: bool, dtype: Any, device: str) -> Tensor:
    """(prod(spatial), ndim + 1): each output pixel's normalised (x, y[, z], 1), x fastest.
    Pixel i of n sits at -1 + (2 i + 1) / n (centres) or -1 + 2 i / (n - 1) (corners)."""
    def axis(n: int):
        if n == 1:
            return np.zeros(1)  # torch: a single pixel sits at 0 either way
        i = np.arange(n, dtype=np.float64)
        return -1 + 2 * i / (n - 1) if align_corners else -1 + (2 * i + 1) / n
    spatial = list(size[2:])
    coords = np.meshgrid(*[axis(n) for n in spatial], indexing="ij")  # (D,) H, W
    base = np.stack([c.reshape(-1) for c in reversed(coords)] + [np.ones(int(np.prod(spatial)))], -1)
    return Tensor(compat.to_device(base.astype(dtype), device))


def affine_grid(theta: Tensor, size: Sequence[int], align_corners: bool | None = None) -> Tensor:
    """The sampling grid of an affine map, as ``torch.nn.functional.affine_grid``.

    theta (N, 2, 3) and size (N, C, H, W) -> grid (N, H, W, 2): output pixel (i, j) with
    normalised coordinates p = (x_j, y_i, 1) reads the input at theta_n p. 3-D: theta
    (N, 3, 4), size (N, C, D, H, W) -> (N, D, H, W, 3). The grid is base @ theta^T (one
    matmul), so dL/dtheta = grad^T @ base.
    """
    op = "affine_grid"
    check_floating(op, "theta", theta)
    size = tuple(int(s) for s in size)
    if len(size) not in (4, 5):
        raise ValueError(f"{op}: size must be (N, C, H, W) or (N, C, D, H, W), got {size}")
    k = len(size) - 2
    if theta.shape != (size[0], k, k + 1):
        raise ValueError(f"{op}: theta must have shape (N, {k}, {k + 1}) = {(size[0], k, k + 1)} for size "
                         f"{size}, got {theta.shape}")
    if min(size[2:]) < 1:
        raise ValueError(f"{op}: the spatial sizes must be >= 1, got size {size}")
    base = _base_grid(size, bool(align_corners), theta.dtype, theta.device)  # (P, k + 1)
    grid = linalg.matmul(base, theta.transpose(1, 2))  # (N, P, k)
    return grid.reshape((size[0],) + size[2:] + (k,))
