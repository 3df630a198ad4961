"""Convolution on the CPU: Numba im2col/col2im feeding one OpenBLAS GEMM per step.

Same functions and signatures as ``tinyvision.kernels.reference.conv`` (read that first: it
states the maths). What changes here is only *where the bytes go*, because on two cores the
GEMM is fast (110-160 GFLOP/s) and everything around it is what loses time (docs/convolution.md,
section 3, has the measurements):

* **Channels-last columns.** The conv path lays its columns out as
  ``cols[g, n, oh, ow, kh, kw, c]``, i.e. one row per output pixel (N*OH*OW rows) and one
  column per weight (KH*KW*Cg). The forward is then ``y = cols @ W`` with y in NHWC memory,
  the layout in which the NumPy/Numba variants measured fastest. y is returned as an NCHW
  *view* of that memory (no transpose copy); NumPy and Numba read any strides.
* **Parallel Numba copies.** ``_im2col`` and ``_col2im`` loop ``prange`` over (group, image)
  pairs. Each pair writes its own columns, and in col2im its own slice of dx, so the
  scatter-add has no races.
* **Reused workspaces.** The columns are the big temporary (KH*KW times the input). A fresh
  array of that size is a fresh mmap and a page fault per 4 KiB (~1.3 us each), so the columns
  live in a per-thread buffer that grows to the largest layer and is then reused.
* **Winograd for 3x3 stride-1 layers** (``kernels/cpu/winograd.py``): F(2x2, 3x3) and
  F(4x4, 3x3) do 2.25x and 4x fewer multiplications than im2col's GEMM; ``algorithm`` below
  picks one per shape from a table of measurements, for the forward and the input gradient.
* **GEMMs over Numba's threads** (``kernels/cpu/blas.py``): each GEMM is split by rows over
  Numba's threads, one single-threaded BLAS call per part, so a conv uses every core in
  whichever order NumPy and tinyvision were imported.
* **One thread policy** (``tinyvision.kernels.cpu.threading``): Numba's workqueue layer, so
  that its threads sleep while OpenBLAS runs.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from tinyvision.kernels.cpu import threading as _thread_policy  # noqa: F401  (before any launch)
from tinyvision.kernels.cpu.workspace import release_workspaces, workspace, workspace_bytes  # noqa: F401
from tinyvision.kernels.cpu import blas, winograd
from tinyvision.kernels.dispatch import ALGORITHMS, forced_algorithm
from tinyvision.kernels.reference.conv import Pair, conv_output_size
from tinyvision.kernels.reference.winograd import applies as winograd_applies

# The ladder: what every rung of this op defines with one signature and kernels/dispatch.py
# reaches by name (tests/test_kernels_ladder.py checks that the rungs agree).
__all__ = ["conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight", "im2col", "col2im"]

# --------------------------------------------------------------------------- Numba kernels
# The kernels work on channels-last images (N, H, W, C): the Cg channels a column entry needs
# are then adjacent. Gathering them from NCHW instead means Cg reads 4 KiB apart (H*W*4 bytes
# for 32x32), all landing in the same L1 set; that made im2col ~3x and col2im ~10x slower.
@njit(parallel=True, cache=True)
def _to_channels_last(x, out):
    """out[n, h, w, c] = x[n, c, h, w], one (n, h) row block at a time (stays in L1)."""
    n_img, channels, height, width = x.shape
    for nh in prange(n_img * height):
        n, h = nh // height, nh % height
        for c in range(channels):
            for w in range(width):
                out[n, h, w, c] = x[n, c, h, w]


# Both kernels see an image as rows of W*C floats (N, H, W*C) and the columns as
# (G, N, OH, OW, KH, KW*Cg): entry (kw, c) of a kernel row is pixel iw = ow*s_w + kw*d_w - p_w,
# channel g*Cg + c. Without dilation and groups, a kernel row inside the image is one run of
# KW*C adjacent floats on both sides: one vectorisable copy instead of KW copies of C floats
# (3 floats each for an RGB stem, where the per-copy overhead dominated).
@njit(parallel=True, cache=True)
def _im2col(x, cols, k_w, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w):
    """cols[g, n, oh, ow, kh, kw*Cg + c] = x[n, oh*s_h + kh*d_h - p_h, (ow*s_w + kw*d_w - p_w)*C + g*Cg + c],
    zero where that pixel lies in the padding."""
    groups, n_img, out_h, out_w, k_h, run = cols.shape
    cg = run // k_w
    channels = groups * cg
    height, width = x.shape[1], x.shape[2] // channels
    one_run = dil_w == 1 and groups == 1
    for gn in prange(groups * n_img):
        g, n = gn // n_img, gn % n_img
        for oh in range(out_h):
            for ow in range(out_w):
                iw0 = ow * stride_w - pad_w
                for kh in range(k_h):
                    ih = oh * stride_h + kh * dil_h - pad_h
                    dst = cols[g, n, oh, ow, kh]
                    if ih < 0 or ih >= height:
                        dst[:] = 0.0
                    elif one_run and iw0 >= 0 and iw0 + k_w <= width:
                        src = x[n, ih, iw0 * channels:(iw0 + k_w) * channels]
                        for j in range(run):
                            dst[j] = src[j]
                    else:
                        for kw in range(k_w):
                            iw = iw0 + kw * dil_w
                            if 0 <= iw < width:
                                src = x[n, ih, iw * channels + g * cg:iw * channels + (g + 1) * cg]
                                for c in range(cg):
                                    dst[kw * cg + c] = src[c]
                            else:
                                for c in range(cg):
                                    dst[kw * cg + c] = 0.0


@njit(parallel=True, cache=True)
def _col2im(cols, dx, k_w, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w):
    """The adjoint of _im2col: dx[n, ih, iw*C + g*Cg + c] += cols[g, n, oh, ow, kh, kw*Cg + c].
    dx (N, H, W*C) starts at zero. Each (g, n) pair owns its channels of image n, so the
    parallel scatter-add has no races."""
    groups, n_img, out_h, out_w, k_h, run = cols.shape
    cg = run // k_w
    channels = groups * cg
    height, width = dx.shape[1], dx.shape[2] // channels
    one_run = dil_w == 1 and groups == 1
    for gn in prange(groups * n_img):
        g, n = gn // n_img, gn % n_img
        for oh in range(out_h):
            for kh in range(k_h):
                ih = oh * stride_h + kh * dil_h - pad_h
                if ih < 0 or ih >= height:
                    continue
                for ow in range(out_w):
                    iw0 = ow * stride_w - pad_w
                    src = cols[g, n, oh, ow, kh]
                    if one_run and iw0 >= 0 and iw0 + k_w <= width:
                        dst = dx[n, ih, iw0 * channels:(iw0 + k_w) * channels]
                        for j in range(run):
                            dst[j] += src[j]
                    else:
                        for kw in range(k_w):
                            iw = iw0 + kw * dil_w
                            if 0 <= iw < width:
                                dst = dx[n, ih, iw * channels + g * cg:iw * channels + (g + 1) * cg]
                                for c in range(cg):
                                    dst[c] += src[kw * cg + c]


# --------------------------------------------------------------------------- helpers
def _out_hw(hw: tuple, kernel_size: Pair, stride: Pair, padding: Pair, dilation: Pair) -> Pair:
    return (conv_output_size(hw[0], kernel_size[0], stride[0], padding[0], dilation[0]),
            conv_output_size(hw[1], kernel_size[1], stride[1], padding[1], dilation[1]))


SMALL_COPY = 1 << 18  # elements (1 MiB of float32): below this NumPy's serial copy wins


def _channels_last(a: np.ndarray, tag: str) -> np.ndarray:
    """(N, C, H, W) -> its (N, H, W, C) view when the memory is already channels-last (as this
    module's outputs are), else a parallel transposed copy into workspace ``tag``."""
    view = a.transpose(0, 2, 3, 1)
    if view.flags.c_contiguous:
        return view
    out = workspace(tag, view.shape, a.dtype)
    if a.size < SMALL_COPY:  # a parallel launch costs more than copying a small array
        np.copyto(out, view)
    else:
        _to_channels_last(a, out)
    return out


def _columns(x: np.ndarray, kernel_size: Pair, stride: Pair, padding: Pair, dilation: Pair,
             groups: int) -> np.ndarray:
    """x's columns in the workspace, as (G, N*OH*OW, KH*KW*Cg) matrices."""
    n, c, h, w = x.shape
    (oh, ow), (kh, kw) = _out_hw((h, w), kernel_size, stride, padding, dilation), kernel_size
    cols = workspace("cols", (groups, n, oh, ow, kh, kw * (c // groups)), x.dtype)
    _im2col(_channels_last(x, "x").reshape(n, h, w * c), cols, kw, *stride, *padding, *dilation)
    return cols.reshape(groups, n * oh * ow, kh * kw * (c // groups))


def _weight_matrices(w: np.ndarray, groups: int) -> np.ndarray:
    """w (O, Cg, KH, KW) -> (G, KH*KW*Cg, Og): rows in the columns' (kh, kw, c) order."""
    o, cg, kh, kw = w.shape
    w = w.reshape(groups, o // groups, cg, kh, kw).transpose(0, 3, 4, 2, 1)
    return w.reshape(groups, kh * kw * cg, o // groups)


def _grad_matrices(grad: np.ndarray, groups: int) -> np.ndarray:
    """grad (N, O, OH, OW) -> (G, N*OH*OW, Og): group g is a column block of the channels-last
    gradient (a copy into a workspace unless grad already is channels-last; then a view)."""
    n, o, oh, ow = grad.shape
    return _channels_last(grad, "grad").reshape(n * oh * ow, groups, o // groups).transpose(1, 0, 2)


# --------------------------------------------------------------------------- algorithm table
# Which algorithm computes a convolution on this rung. Winograd applies to 3x3, stride 1,
# dilation 1, groups 1 (reference/winograd.py); where it applies, the table below decides,
# from fwd + both gradients of ResNet-18-CIFAR's layers (N32, C->C, 2 threads, 2026-12-05, load
# ~2; docs/convolution.md section 7), im2col / F(2x2) / F(4x4) in ms:
#   64ch 32x32: 72.8 / 73.6 / 65.1    128ch 16x16: 48.2 / 45.9 / 40.4
#   256ch 8x8:  41.8 / 54.5 / 59.2    512ch 4x4:   52.0 / 136.6 / 231.5
# so F(4x4, 3x3) from 16x16 outputs up, im2col below (small maps: few tiles, many channels,
# the transforms cost more than the GEMMs save), and im2col for an RGB stem (few channels).
# F(2x2, 3x3) never won; it stays available to use_algorithm.
WINOGRAD_TILE = {"winograd2": 2, "winograd4": 4}
WINOGRAD_MIN_CHANNELS = 16   # min(C_in, C_out) below which im2col runs
WINOGRAD_MIN_SIZE = 16       # min(OH, OW) below which im2col runs
ALGORITHMS = ALGORITHMS["conv"]


def algorithm(x_shape: tuple, w_shape: tuple, stride: Pair, padding: Pair, dilation: Pair, groups: int) -> str:
    """The algorithm that computes conv2d(x, w) with these arguments (and its input gradient)."""
    if not winograd_applies(x_shape, w_shape, stride, padding, dilation, groups):
        return "im2col"
    forced = forced_algorithm("conv")  # kernels.dispatch.use_algorithm("conv", ...)
    if forced is not None:
        return forced
    if min(x_shape[1], w_shape[0]) < WINOGRAD_MIN_CHANNELS:
        return "im2col"
    out = _out_hw(x_shape[2:], (3, 3), stride, padding, dilation)
    return "winograd4" if min(out) >= WINOGRAD_MIN_SIZE else "im2col"


# --------------------------------------------------------------------------- the ladder API
def conv2d_forward(x: np.ndarray, w: np.ndarray, stride: Pair, padding: Pair, dilation: Pair,
                   groups: int) -> np.ndarray:
    """(N, C, H, W), (O, C/groups, KH, KW) -> (N, O, OH, OW), an NCHW view of NHWC memory.

    Winograd where the table says so; otherwise
    y_g (N*OH*OW, Og) = cols_g (N*OH*OW, KH*KW*Cg) @ W_g (KH*KW*Cg, Og), split by rows over
    Numba's threads (groups == 1) or all groups in one batched matmul.
    """
    name = algorithm(x.shape, w.shape, stride, padding, dilation, groups)
    if name != "im2col":
        return winograd.conv2d_forward_nhwc(_channels_last(x, "x"), w, padding, WINOGRAD_TILE[name])
    n, _, h, wd = x.shape
    o, _, kh, kw = w.shape
    oh, ow = _out_hw((h, wd), (kh, kw), stride, padding, dilation)
    cols, wm = _columns(x, (kh, kw), stride, padding, dilation, groups), _weight_matrices(w, groups)
    y = blas.matmul(cols[0], wm[0])[None] if groups == 1 else cols @ wm
    # (G, N*OH*OW, Og) -> (N, G*Og, OH, OW): a view when groups == 1 or Og == 1
    return y.reshape(groups, n, oh, ow, o // groups).transpose(1, 0, 4, 2, 3).reshape(n, o, oh, ow)


def conv2d_backward_input(grad: np.ndarray, w: np.ndarray, x_shape: tuple, stride: Pair, padding: Pair,
                          dilation: Pair, groups: int) -> np.ndarray:
    """dL/dx (x_shape) = col2im(grad_g @ W_g^T): the transposed convolution of grad with w
    (on Winograd where the forward would be). An NCHW view of channels-last memory."""
    n, o, oh, ow = grad.shape
    _, cg, kh, kw = w.shape
    # Winograd when it computes the forward of x_shape and grad is exactly that forward's size
    # (a transposed conv may ask for another x_shape); dx is then a stride-1 conv of grad
    name = algorithm(x_shape, w.shape, stride, padding, dilation, groups)
    if name != "im2col" and _out_hw(x_shape[2:], (kh, kw), stride, padding, dilation) == (oh, ow):
        return winograd.conv2d_backward_input_nhwc(_channels_last(grad, "grad"), w, padding, WINOGRAD_TILE[name])
    dcols = workspace("dcols", (groups, n * oh * ow, kh * kw * cg), grad.dtype)
    g, wt = _grad_matrices(grad, groups), _weight_matrices(w, groups).transpose(0, 2, 1)
    if groups == 1:
        blas.matmul(g[0], wt[0], out=dcols[0])
    else:
        np.matmul(g, wt, out=dcols)
    _, c, h, wd = x_shape
    dx = np.zeros((n, h, wd, c), dtype=grad.dtype)
    _col2im(dcols.reshape(groups, n, oh, ow, kh, kw * cg), dx.reshape(n, h, wd * c), kw, *stride, *padding, *dilation)
    return dx.transpose(0, 3, 1, 2)  # NCHW view of channels-last memory


def conv2d_backward_weight(grad: np.ndarray, x: np.ndarray, w_shape: tuple, stride: Pair, padding: Pair,
                           dilation: Pair, groups: int) -> np.ndarray:
    """dL/dW_g (KH*KW*Cg, Og) = cols_g^T @ grad_g: the input correlated with the gradient."""
    o, cg, kh, kw = w_shape
    cols, g = _columns(x, (kh, kw), stride, padding, dilation, groups), _grad_matrices(grad, groups)
    dw = blas.matmul_tn(cols[0], g[0])[None] if groups == 1 else cols.transpose(0, 2, 1) @ g
    return dw.reshape(groups, kh, kw, cg, o // groups).transpose(0, 4, 3, 1, 2).reshape(w_shape)


def im2col(x: np.ndarray, kernel_size: Pair, stride: Pair, padding: Pair, dilation: Pair) -> np.ndarray:
    """x (N, C, H, W) -> (N, C*KH*KW, OH*OW), ``unfold``'s layout (a copy out of the workspace)."""
    n, c, _, _ = x.shape
    (oh, ow), (kh, kw) = _out_hw(x.shape[2:], kernel_size, stride, padding, dilation), kernel_size
    cols = _columns(x, kernel_size, stride, padding, dilation, 1).reshape(n, oh, ow, kh, kw, c)
    return cols.transpose(0, 5, 3, 4, 1, 2).reshape(n, c * kh * kw, oh * ow)


def col2im(cols: np.ndarray, x_shape: tuple, kernel_size: Pair, stride: Pair, padding: Pair,
           dilation: Pair) -> np.ndarray:
    """cols (N, C*KH*KW, OH*OW) -> (N, C, H, W), overlapping entries summed (``fold``)."""
    n, c, h, w = x_shape
    (oh, ow), (kh, kw) = _out_hw((h, w), kernel_size, stride, padding, dilation), kernel_size
    nhwc = workspace("dcols", (1, n, oh, ow, kh, kw, c), cols.dtype)
    np.copyto(nhwc[0], cols.reshape(n, c, kh, kw, oh, ow).transpose(0, 4, 5, 2, 3, 1))
    x = np.zeros((n, h, w, c), dtype=cols.dtype)
    _col2im(nhwc.reshape(1, n, oh, ow, kh, kw * c), x.reshape(n, h, w * c), kw, *stride, *padding, *dilation)
    return x.transpose(0, 3, 1, 2)
