"""Winograd F(2x2, 3x3) and F(4x4, 3x3) convolution on the CPU: Numba transforms around
(m+2)^2 OpenBLAS GEMMs. The maths, the matrices and the NumPy version to read first are in
``tinyvision.kernels.reference.winograd``; ``kernels/cpu/conv.py`` decides when this runs.

Layout: channels-last throughout, as the im2col rung. The input transform reads the NHWC image
tile by tile and writes V ((m+2)^2, P, C), P = N * tiles: for each tile position (xi, nu) a
(P, C) matrix, so that the multiply-adds are (m+2)^2 GEMMs V[k] (P, C) @ U[k] (C, O), batched
in one ``np.matmul``. The output transform reads M ((m+2)^2, P, O) and writes y in NHWC memory,
returned as an NCHW view (as every conv kernel here returns). Both transforms loop ``prange``
over rows of tiles; within a tile the innermost loop runs over channels (adjacent in memory,
so it vectorises), and the zero entries of B^T and A^T are skipped.

The (m+2)^2 GEMMs run in a Numba ``prange``, one whole GEMM per thread on one BLAS thread
(``_tile_gemms``), rather than ``np.matmul``'s loop of GEMMs each split over BLAS's threads:
the cores belong to Numba's pool for the whole convolution, whatever BLAS's thread count is
(it is one when NumPy was imported before tinyvision, tinyvision/threads.py), and there is no
fork-join per GEMM.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from tinyvision.kernels.cpu import threading as _thread_policy  # noqa: F401  (before any launch)
from tinyvision.kernels.cpu.blas import one_blas_thread
from tinyvision.kernels.cpu.workspace import workspace
from tinyvision.kernels.reference.conv import conv_output_size
from tinyvision.kernels.reference.winograd import flipped_filters, transform_filters, winograd_matrices


@njit(parallel=True, cache=True)
def _input_transform(x, v, bt, m, pad_h, pad_w, tiles_h, tiles_w):
    """v[xi*a + nu, p, c] = (B^T d B)[xi, nu] for the tile d of channel c at tile p.

    x (N, H, W, C) channels-last; tile (ti, tj) of image n is p = (n*th + ti)*tw + tj and
    covers rows ti*m - pad_h ... + a - 1 (zero outside the image), a = m + 2."""
    n_img, height, width, channels = x.shape
    a = bt.shape[0]
    for nt in prange(n_img * tiles_h):
        n, ti = nt // tiles_h, nt % tiles_h
        d = np.empty((a, a, channels), x.dtype)
        t = np.empty((a, a, channels), x.dtype)
        for tj in range(tiles_w):
            p = nt * tiles_w + tj
            h0, w0 = ti * m - pad_h, tj * m - pad_w
            for i in range(a):                           # gather the tile (zero padding outside)
                for j in range(a):
                    if 0 <= h0 + i < height and 0 <= w0 + j < width:
                        src = x[n, h0 + i, w0 + j]
                        for c in range(channels):
                            d[i, j, c] = src[c]
                    else:
                        for c in range(channels):
                            d[i, j, c] = 0.0
            for u in range(a):                           # t = B^T d   (rows)
                for j in range(a):
                    for c in range(channels):
                        t[u, j, c] = 0.0
                    for i in range(a):
                        b = bt[u, i]
                        if b != 0.0:
                            for c in range(channels):
                                t[u, j, c] += b * d[i, j, c]
            for u in range(a):                           # v = t B     (columns)
                for nu in range(a):
                    dst = v[u * a + nu, p]
                    for c in range(channels):
                        dst[c] = 0.0
                    for j in range(a):
                        b = bt[nu, j]
                        if b != 0.0:
                            for c in range(channels):
                                dst[c] += b * t[u, j, c]


@njit(parallel=True, cache=True)
def _output_transform(mm, y, at, tiles_h, tiles_w):
    """y[n, ti*m + r, tj*m + s, o] = (A^T M A)[r, s] for tile p's (a, a) slice of mm[:, p, o],
    cropped at the image's bottom and right edges. mm (a*a, P, O), y (N, OH, OW, O)."""
    n_img, out_h, out_w, outs = y.shape
    m, a = at.shape
    for nt in prange(n_img * tiles_h):
        n, ti = nt // tiles_h, nt % tiles_h
        t = np.empty((m, a, outs), mm.dtype)
        for tj in range(tiles_w):
            p = nt * tiles_w + tj
            for r in range(m):                           # t = A^T M   (rows)
                for nu in range(a):
                    for o in range(outs):
                        t[r, nu, o] = 0.0
                    for u in range(a):
                        b = at[r, u]
                        if b != 0.0:
                            src = mm[u * a + nu, p]
                            for o in range(outs):
                                t[r, nu, o] += b * src[o]
            for r in range(min(m, out_h - ti * m)):      # y = t A     (columns), cropped
                for s in range(min(m, out_w - tj * m)):
                    dst = y[n, ti * m + r, tj * m + s]
                    for o in range(outs):
                        dst[o] = 0.0
                    for nu in range(a):
                        b = at[s, nu]
                        if b != 0.0:
                            for o in range(outs):
                                dst[o] += b * t[r, nu, o]


@njit(parallel=True, cache=True)
def _tile_gemms(v, u, mm):
    """mm[k] = v[k] @ u[k] for each tile position k, one GEMM per task (np.dot: SciPy's BLAS)."""
    for k in prange(v.shape[0]):
        np.dot(v[k], u[k], mm[k])


def conv2d_forward_nhwc(x_nhwc: np.ndarray, w: np.ndarray, padding: tuple, m: int) -> np.ndarray:
    """x (N, H, W, C) channels-last, w (O, C, 3, 3), stride 1 -> y (N, O, OH, OW), an NCHW view
    of NHWC memory, with F(m x m, 3 x 3)."""
    n, h, wd, c = x_nhwc.shape
    o = w.shape[0]
    a = m + 2
    oh, ow = conv_output_size(h, 3, 1, padding[0]), conv_output_size(wd, 3, 1, padding[1])
    th, tw = -(-oh // m), -(-ow // m)
    bt, _, at = winograd_matrices(m, x_nhwc.dtype)
    v = workspace("winograd_v", (a * a, n * th * tw, c), x_nhwc.dtype)
    _input_transform(x_nhwc, v, bt, m, padding[0], padding[1], th, tw)
    mm = workspace("winograd_m", (a * a, n * th * tw, o), x_nhwc.dtype)
    with one_blas_thread():
        _tile_gemms(v, transform_filters(w, m), mm)      # the (m+2)^2 GEMMs
    y = np.empty((n, oh, ow, o), dtype=x_nhwc.dtype)
    _output_transform(mm, y, at, th, tw)
    return y.transpose(0, 3, 1, 2)


def conv2d_backward_input_nhwc(grad_nhwc: np.ndarray, w: np.ndarray, padding: tuple, m: int) -> np.ndarray:
    """dL/dx of a stride-1 3x3 conv: grad (N, OH, OW, O) channels-last convolved with the
    flipped, transposed filters at padding 2 - p (reference.winograd.flipped_filters)."""
    return conv2d_forward_nhwc(grad_nhwc, flipped_filters(w), (2 - padding[0], 2 - padding[1]), m)
