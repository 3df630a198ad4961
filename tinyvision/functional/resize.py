"""Changing the spatial resolution of (N, C, *spatial) maps: ``interpolate`` (nearest,
nearest-exact, linear / bilinear / trilinear for 1, 2, 3 spatial dims, bicubic, and area;
bilinear and bicubic also antialiased)
and ``pixel_shuffle`` / ``pixel_unshuffle``.

Every interpolation mode is separable: along each spatial axis every output sample is a
weighted sum of a few input samples ("taps"):

    nearest    y[o] = x[i(o)]                              one tap, weight 1
    linear     y[o] = (1 - l(o)) x[i0(o)] + l(o) x[i1(o)]  two taps
    cubic      y[o] = sum_k w_k(o) x[i(o) + k], k = -1..2  four taps (Keys' cubic convolution)
    area       y[o] = mean of x over o's bin               as many taps as the longest bin
    antialias  y[o] = sum_j f((j - c(o)) / s) x[j] / norm   the filter f stretched by the shrink s

so the forward is a gather per tap along each spatial axis in turn (bilinear = linear along
H, then along W; trilinear along D, H, W; bicubic = cubic along H, then W). The backward is the transpose: each
output gradient goes back, times its tap weight, to the input sample it came from, summed where
several outputs share an input. That sum is again a gather, with transposed taps
(``_transpose_taps``), which vectorises where a scatter-add (``np.add.at``) would not.
The source-index formulas are PyTorch's (see ``_nearest_taps`` and ``_linear_taps``).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from tinyvision.autograd.function import Context, Function
from tinyvision.autograd.tensor import Tensor
from tinyvision.functional._util import check_floating, check_tensor, int_sizes, real_number
from tinyvision.functional.shape import permute, reshape
from tinyvision.kernels.compat import array_module

# Per output sample along one axis: which input sample to read and with what weight (None = 1).
Taps = list[tuple[np.ndarray, np.ndarray | None]]  # [(index (n_out,), weight (n_out,) or None), ...]


def _nearest_taps(n_in: int, n_out: int, scale: float | None, exact: bool) -> Taps:
    """PyTorch's 'nearest' (legacy): i = min(floor(o * s), n_in - 1), and 'nearest-exact':
    i = min(floor((o + 0.5) * s), n_in - 1) (the pixel centres' rule, as PIL's), with
    s = 1/scale_factor when a scale factor was given, else n_in/n_out, computed in float32 as
    PyTorch does (the floor makes the rounding visible). The legacy rule special-cases exact
    doubling there too."""
    o = np.arange(n_out)
    if n_out == 2 * n_in and not exact:
        idx = o >> 1
    else:
        s = np.float32(1.0 / scale) if scale else np.float32(n_in) / np.float32(n_out)
        src = (o.astype(np.float32) + np.float32(0.5 if exact else 0.0)) * s
        idx = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    return [(idx, None)]


def _source(n_in: int, n_out: int, scale: float | None, align_corners: bool, dtype: Any,
            clamp: bool) -> np.ndarray:
    """PyTorch's source coordinate of every output sample, in the input's dtype:

        align_corners=True:   src = o * (n_in - 1) / (n_out - 1)
        align_corners=False:  src = (o + 0.5) * s - 0.5,  s = 1/scale_factor or n_in/n_out,
                              clamped at 0 for linear (not for cubic)
    """
    o = np.arange(n_out, dtype=dtype)
    if align_corners:
        return o * (dtype(n_in - 1) / dtype(n_out - 1) if n_out > 1 else dtype(0.0))
    s = dtype(1.0 / scale) if scale else dtype(n_in) / dtype(n_out)
    src = (o + dtype(0.5)) * s - dtype(0.5)
    return np.maximum(src, dtype(0.0)) if clamp else src


def _linear_taps(n_in: int, n_out: int, scale: float | None, align_corners: bool, dtype: Any) -> Taps:
    """i0 = floor(src), i1 = min(i0 + 1, n_in - 1), weights (1 - l, l) with l = src - i0."""
    src = _source(n_in, n_out, scale, align_corners, dtype, clamp=True)
    i0 = src.astype(np.int64)  # src >= 0, so truncation is floor
    i1 = np.minimum(i0 + 1, n_in - 1)
    lam = src - i0.astype(dtype)
    return [(i0, 1 - lam), (i1, lam)]


CUBIC_A = -0.75  # PyTorch's (and OpenCV's) choice for Keys' cubic convolution


def _cubic_taps(n_in: int, n_out: int, scale: float | None, align_corners: bool, dtype: Any) -> Taps:
    """Keys' cubic convolution: i = floor(src), t = src - i; four taps i - 1 .. i + 2 (clamped
    to the edge), at distances d = t + 1, t, 1 - t, 2 - t, weighted by

        w(d) = (A + 2) d^3 - (A + 3) d^2 + 1     for d <= 1
        w(d) = A d^3 - 5 A d^2 + 8 A d - 4 A     for 1 < d < 2

    (the weights sum to 1 and interpolate: t = 0 gives (0, 1, 0, 0))."""
    src = _source(n_in, n_out, scale, align_corners, dtype, clamp=False)
    i = np.floor(src).astype(np.int64)
    t = src - i.astype(dtype)
    a = dtype(CUBIC_A)

    def near(d):
        return ((a + 2) * d - (a + 3)) * d * d + 1

    def far(d):
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a

    weights = (far(t + 1), near(t), near(1 - t), far(2 - t))
    return [(np.clip(i + k, 0, n_in - 1), w) for k, w in zip(range(-1, 3), weights)]


def _triangle(d):
    """The linear filter: w(d) = max(1 - |d|, 0)."""
    d = np.abs(d)
    return np.where(d < 1, 1 - d, 0)


def _keys_half(d):
    """Keys' cubic with A = -0.5 (PIL's and PyTorch's antialiased bicubic; the plain one uses
    -0.75): (A + 2)|d|^3 - (A + 3)|d|^2 + 1 for |d| <= 1, A|d|^3 - 5A|d|^2 + 8A|d| - 4A for
    1 < |d| < 2, 0 beyond."""
    a, d = -0.5, np.abs(d)
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return np.where(d < 1, near, np.where(d < 2, far, 0))


# mode -> (filter, its support in input samples at scale 1)
_AA_FILTERS = {"bilinear": (_triangle, 1.0), "bicubic": (_keys_half, 2.0)}


def _antialias_taps(n_in: int, n_out: int, scale: float | None, mode: str, align_corners: bool,
                    dtype: Any) -> Taps:
    """PyTorch's (and PIL's) antialiased resampling: when shrinking by s = n_in / n_out > 1 the
    filter is stretched by s, so every output averages all the input it covers (a low-pass
    before sampling; without it, shrinking aliases). Output o is centred at c = s (o + 0.5) and
    reads the inputs j in [xmin, xmax) with

        xmin = max(int(c - R + 0.5), 0),   xmax = min(int(c + R + 0.5), n_in),   R = r max(s, 1)
        w_j = f((j - c + 0.5) / max(s, 1)),  normalised to sum to 1

    (r = 1 for the triangle, 2 for the cubic; the normalisation also handles the edges, where
    the window is cut). s is 1/scale_factor when given, else n_in / n_out, or
    (n_in - 1) / (n_out - 1) with align_corners (which moves no centre here, as in PyTorch).
    Tap k reads xmin + k, with weight 0 past the window's end.

    An axis whose size does not change is copied, whatever the scale_factor: PyTorch's
    antialiased forward skips it (its backward does not, so there PyTorch's gradient is not its
    forward's; ours is, tested by finite differences)."""
    if n_out == n_in:
        return [(np.arange(n_out), None)]
    filt, radius = _AA_FILTERS[mode]
    if align_corners:
        s = dtype(n_in - 1) / dtype(n_out - 1) if n_out > 1 else dtype(0.0)
    else:
        s = dtype(1.0 / scale) if scale else dtype(n_in) / dtype(n_out)
    support = radius * s if s >= 1 else dtype(radius)
    invscale = 1 / s if s >= 1 else dtype(1.0)
    centre = s * (np.arange(n_out, dtype=dtype) + dtype(0.5))
    xmin = np.maximum((centre - support + dtype(0.5)).astype(np.int64), 0)  # int(): truncation, as torch
    xsize = np.minimum((centre + support + dtype(0.5)).astype(np.int64), n_in) - xmin
    k = np.arange(int(math.ceil(support)) * 2 + 1)[:, None]  # (taps, 1): enough for any window
    w = filt(((k + xmin).astype(dtype) - centre + dtype(0.5)) * invscale).astype(dtype)
    w = np.where(k < xsize, w, 0)
    total = w.sum(axis=0)
    w = w / np.where(total != 0, total, 1)
    used = int(xsize.max())
    return [(np.minimum(xmin + r, n_in - 1), w[r].astype(dtype)) for r in range(used)]


def _area_taps(n_in: int, n_out: int, dtype: Any) -> Taps:
    """'area' = adaptive average pooling: output o is the mean of the bin
    [floor(o n_in / n_out), ceil((o + 1) n_in / n_out)). Tap r reads the bin's r-th sample with
    weight 1 / (bin length), or weight 0 past a shorter bin's end. The mean over a rectangle
    is the mean over its rows of the means over its columns, so this too is separable."""
    o = np.arange(n_out)
    start = o * n_in // n_out
    length = -(-(o + 1) * n_in // n_out) - start  # ceil(...) - start
    return [(np.minimum(start + r, n_in - 1), np.where(r < length, 1 / length, 0).astype(dtype))
            for r in range(int(length.max()))]


def _along(w, axis: int, ndim: int):
    """A per-sample weight (n,) shaped to broadcast along ``axis`` of an ndim array."""
    return w.reshape((-1,) + (1,) * (ndim - 1 - axis))


def _gather_axis(x, axis: int, taps: Taps):
    """y = sum over taps of x[..., idx, ...] * w along ``axis``."""
    xp = array_module(x)
    y = None
    for idx, w in taps:
        term = xp.take(x, xp.asarray(idx), axis=axis)
        if w is not None:
            term *= xp.asarray(_along(w, axis, x.ndim))
        y = term if y is None else y + term
    return y


def _transpose_taps(taps: Taps, n_in: int, dtype: Any) -> Taps:
    """The taps of the transposed map A^T, so that the backward is a gather as well.

    Every idx is non-decreasing, so the outputs o that read input i form one run
    [start(i), end(i)) per tap. Input i collects w[o] g[o] over that run: the r-th transposed tap
    reads o = start(i) + r with weight w[o], or weight 0 where the run is shorter than r + 1.
    There are as many transposed taps as the longest run (~ n_out / n_in + 1 when upsampling).
    """
    inputs = np.arange(n_in)
    out: Taps = []
    for idx, w in taps:
        start = np.searchsorted(idx, inputs, side="left")
        end = np.searchsorted(idx, inputs, side="right")
        for r in range(int((end - start).max())):
            o = np.minimum(start + r, len(idx) - 1)
            valid = start + r < end
            if w is None and valid.all():  # every input read exactly here: a plain gather
                out.append((o, None))
            else:
                out.append((o, np.where(valid, 1 if w is None else w[o], 0).astype(dtype)))
    return out


class Resample(Function):
    """y = x resampled along each spatial axis in turn (axis 2, 3, ...), each axis given by its
    taps: for 2-D maps y = A_H x A_W^T per (n, c) map. The backward applies the transposed
    taps (dx = A_H^T g A_W), the same gathers."""

    @staticmethod
    def forward(ctx: Context, x, *taps: Taps):
        ctx.in_sizes, ctx.taps = x.shape[2:], taps
        for axis, axis_taps in enumerate(taps, start=2):
            x = _gather_axis(x, axis, axis_taps)
        return x

    @staticmethod
    def backward(ctx: Context, grad):
        for axis, (n_in, axis_taps) in enumerate(zip(ctx.in_sizes, ctx.taps), start=2):
            grad = _gather_axis(grad, axis, _transpose_taps(axis_taps, n_in, grad.dtype))
        return (grad,) + (None,) * len(ctx.taps)


def _axis_taps(n_in: int, n_out: int, scale: float | None, mode: str, align_corners: bool,
               dtype: Any) -> Taps:
    """The taps of one axis. An axis whose size does not change is copied ('nearest' and the
    linear modes) even when a scale_factor (say 1.2 on 3 rows: floor(3.6) = 3) would move the
    samples: PyTorch's kernels special-case it that way -- but not for 'nearest-exact' and
    'bicubic', where (o + 0.5) / 1.2 does move them (tested)."""
    if n_out == n_in and mode not in ("nearest-exact", "bicubic"):
        return [(np.arange(n_out), None)]
    if mode.startswith("nearest"):
        return _nearest_taps(n_in, n_out, scale, exact=mode == "nearest-exact")
    if mode == "bicubic":
        return _cubic_taps(n_in, n_out, scale, align_corners, dtype)
    if mode == "area":
        return _area_taps(n_in, n_out, dtype)
    return _linear_taps(n_in, n_out, scale, align_corners, dtype)


# mode -> the input rank it needs (None: any of 3, 4, 5)
_MODES = {"nearest": None, "nearest-exact": None, "area": None, "linear": 3, "bilinear": 4, "bicubic": 4,
          "trilinear": 5}
_SPATIAL = {3: "(N, C, W)", 4: "(N, C, H, W)", 5: "(N, C, D, H, W)"}


def _per_axis(value: Any, name: str, cast: type, ndim: int) -> tuple:
    """One value for every spatial axis, or one per axis."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,) * (ndim - 2)
    if len(values) != ndim - 2:
        raise ValueError(f"interpolate: {name} must be one value or {ndim - 2} values for {ndim}-D input "
                         f"{_SPATIAL[ndim]}, got {value}")
    if cast is int:  # sizes are ints (2.5 is refused, not truncated), as in torch
        return int_sizes("interpolate", name, values)
    return tuple(float(real_number("interpolate", name, v)) for v in values)


def interpolate(input: Tensor, size: int | Sequence[int] | None = None,
                scale_factor: float | Sequence[float] | None = None, mode: str = "nearest",
                align_corners: bool | None = None, recompute_scale_factor: bool | None = None,
                antialias: bool = False) -> Tensor:
    """Resize a (N, C, *spatial) map with 1, 2 or 3 spatial dims, as
    ``torch.nn.functional.interpolate``: (N, C, W) -> (N, C, W_out), (N, C, H, W) ->
    (N, C, H_out, W_out), (N, C, D, H, W) -> (N, C, D_out, H_out, W_out).

    Give either ``size`` or ``scale_factor`` (one value, or one per spatial dim; then
    out = floor(in * scale) and, as in PyTorch unless ``recompute_scale_factor``, the coordinate
    map uses 1/scale_factor, not in/out). ``mode``: 'nearest' (legacy floor rule),
    'nearest-exact' (pixel centres), 'linear' / 'bilinear' / 'trilinear' for 3-, 4-, 5-D
    input, 'bicubic' (4-D; no antialiasing, and like PyTorch's it may overshoot the input's
    range), or 'area' (adaptive average pooling to the output size); ``align_corners`` (the
    linear and cubic modes only, default False) maps the corner pixels' centres onto each other.
    """
    check_tensor("interpolate", "input", input)
    if mode not in _MODES:
        raise ValueError(f"interpolate: mode must be one of {tuple(_MODES)}, got {mode!r}")
    if not mode.startswith("nearest"):  # weights are fractions: an integer map would truncate them to 0
        check_floating("interpolate", "input", input, f" for mode {mode!r}")
    if 0 in input.shape[1:]:
        raise ValueError(f"interpolate: input of shape {input.shape} has a zero-size dim; only the "
                         "batch dim may be 0")
    if input.ndim not in _SPATIAL or _MODES[mode] not in (None, input.ndim):
        need = _SPATIAL[_MODES[mode]] if _MODES[mode] else "3-, 4- or 5-D (N, C, *spatial)"
        raise ValueError(f"interpolate: mode {mode!r} needs {need} input, got shape {input.shape}")
    if mode in ("nearest", "nearest-exact", "area") and align_corners is not None:
        raise ValueError("interpolate: align_corners can only be set with mode 'linear', 'bilinear', "
                         f"'bicubic' or 'trilinear', got align_corners={align_corners} with mode={mode!r}")
    if antialias and (mode not in _AA_FILTERS or input.ndim != 4):
        raise ValueError("interpolate: antialias=True needs mode 'bilinear' or 'bicubic' and (N, C, H, W) input, "
                         f"got mode={mode!r} and shape {input.shape}")
    if (size is None) == (scale_factor is None):
        raise ValueError(f"interpolate: give exactly one of size and scale_factor, got size={size} "
                         f"and scale_factor={scale_factor}")
    in_sizes, none = input.shape[2:], (None,) * (input.ndim - 2)
    if size is not None:
        out_sizes, scales = _per_axis(size, "size", int, input.ndim), none
    else:
        scales = _per_axis(scale_factor, "scale_factor", float, input.ndim)
        if min(scales) <= 0:
            raise ValueError(f"interpolate: scale_factor must be positive, got {scale_factor}")
        out_sizes = tuple(math.floor(n * s) for n, s in zip(in_sizes, scales))
        if recompute_scale_factor:
            scales = none
    if min(out_sizes) <= 0:
        raise ValueError(f"interpolate: output size {out_sizes} must be positive (input of shape "
                         f"{input.shape}, size={size}, scale_factor={scale_factor})")
    dtype = np.dtype(input.dtype).type
    axis_taps = _antialias_taps if antialias else _axis_taps
    taps = [axis_taps(n, o, s, mode, bool(align_corners), dtype) for n, o, s in zip(in_sizes, out_sizes, scales)]
    return Resample.apply(input, *taps)


def _check_factor(op: str, factor: int) -> int:
    if int(factor) != factor or factor < 1:
        raise ValueError(f"{op}: the factor must be a positive integer, got {factor}")
    return int(factor)


def pixel_shuffle(input: Tensor, upscale_factor: int) -> Tensor:
    """(*, C r^2, H, W) -> (*, C, H r, W r): out[c, h r + i, w r + j] = in[c r^2 + i r + j, h, w]."""
    r = _check_factor("pixel_shuffle", upscale_factor)
    if input.ndim < 3 or input.shape[-3] % (r * r):
        raise ValueError(f"pixel_shuffle: input must be (*, C * r^2, H, W) with r = {r}, "
                         f"got shape {input.shape}")
    *batch, c, h, w = input.shape
    b = len(batch)
    x = reshape(input, (*batch, c // (r * r), r, r, h, w))
    x = permute(x, (*range(b), b, b + 3, b + 1, b + 4, b + 2))  # (*, C, H, r, W, r)
    return reshape(x, (*batch, c // (r * r), h * r, w * r))


def pixel_unshuffle(input: Tensor, downscale_factor: int) -> Tensor:
    """(*, C, H r, W r) -> (*, C r^2, H, W): the inverse of ``pixel_shuffle``."""
    r = _check_factor("pixel_unshuffle", downscale_factor)
    if input.ndim < 3 or input.shape[-2] % r or input.shape[-1] % r:
        raise ValueError(f"pixel_unshuffle: input must be (*, C, H * r, W * r) with r = {r}, "
                         f"got shape {input.shape}")
    *batch, c, h, w = input.shape
    b = len(batch)
    x = reshape(input, (*batch, c, h // r, r, w // r, r))
    x = permute(x, (*range(b), b, b + 2, b + 4, b + 1, b + 3))  # (*, C, r, r, H, W)
    return reshape(x, (*batch, c * r * r, h // r, w // r))
