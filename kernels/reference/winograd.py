"""Winograd's minimal filtering for 3x3 convolution (Lavin & Gray 2016), in NumPy, to be read.

F(m x m, 3 x 3) computes an m x m tile of outputs from an (m + 2) x (m + 2) tile of input with
(m + 2)^2 multiplications per (input channel, output channel) pair instead of 9 m^2:

    Y = A^T [ (G g G^T) * (B^T d B) ] A          (* is the elementwise product)

for a 3x3 filter g and an input tile d. Summed over input channels, the elementwise products
become (m + 2)^2 independent matrix products, one per tile position (xi, nu):

    U[xi, nu] = (G g G^T)[xi, nu]       (C, O)    the filters, transformed once per call
    V[xi, nu] = (B^T d B)[xi, nu]       (P, C)    every input tile, P = N * tiles
    M[xi, nu] = V[xi, nu] @ U[xi, nu]   (P, O)    (m + 2)^2 GEMMs, the multiply-adds
    y tile    = A^T M A                           back to m x m outputs per tile

  m   tile   multiplications per output (vs 9)    transforms' constants
  2   4x4    16 / 4  = 4     (2.25x fewer)        0, +-1, +-1/2: exact in binary
  4   6x6    36 / 16 = 2.25  (4x fewer)           up to 8 and 1/24: rounding error grows

The price is accuracy: the transforms add and subtract values of different sizes, so rounding
errors are amplified (F(4, 3) more than F(2, 3)); docs/convolution.md has the measured
float32 errors against a float64 computation. Only stride 1, dilation 1, groups 1 and a 3x3
kernel apply (that is every 3x3 layer of a ResNet). The input gradient is the same kind of
convolution (grad with the flipped, transposed filters, padding 2 - p), so it reuses this
forward; the weight gradient stays on im2col (kernels/cpu/conv.py says why).
"""
from __future__ import annotations

import numpy as np

from tinyvision.kernels.reference.conv import conv_output_size

# Lavin & Gray (2016), section 4.1 (F(2, 3)) and 4.2 (F(4, 3)); rows of B^T and A^T, and G.
F2_BT = [[1, 0, -1, 0],
         [0, 1, 1, 0],
         [0, -1, 1, 0],
         [0, 1, 0, -1]]
F2_G = [[1, 0, 0],
        [1 / 2, 1 / 2, 1 / 2],
        [1 / 2, -1 / 2, 1 / 2],
        [0, 0, 1]]
F2_AT = [[1, 1, 1, 0],
         [0, 1, -1, -1]]

F4_BT = [[4, 0, -5, 0, 1, 0],
         [0, -4, -4, 1, 1, 0],
         [0, 4, -4, -1, 1, 0],
         [0, -2, -1, 2, 1, 0],
         [0, 2, -1, -2, 1, 0],
         [0, 4, 0, -5, 0, 1]]
F4_G = [[1 / 4, 0, 0],
        [-1 / 6, -1 / 6, -1 / 6],
        [-1 / 6, 1 / 6, -1 / 6],
        [1 / 24, 1 / 12, 1 / 6],
        [1 / 24, -1 / 12, 1 / 6],
        [0, 0, 1]]
F4_AT = [[1, 1, 1, 1, 1, 0],
         [0, 1, -1, 2, -2, 0],
         [0, 1, 1, 4, 4, 0],
         [0, 1, -1, 8, -8, 1]]

TILES = {2: (F2_BT, F2_G, F2_AT), 4: (F4_BT, F4_G, F4_AT)}


def winograd_matrices(m: int, dtype=np.float64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(B^T, G, A^T) of F(m x m, 3 x 3), m in (2, 4), as arrays of ``dtype``."""
    if m not in TILES:
        raise ValueError(f"winograd: output tile m must be 2 or 4, got {m}")
    return tuple(np.array(t, dtype=dtype) for t in TILES[m])


def applies(x_shape: tuple, w_shape: tuple, stride, padding, dilation, groups: int) -> bool:
    """Whether Winograd can compute this convolution: a 3x3 kernel, stride 1, dilation 1,
    groups 1, padding at most 2 (so that the input gradient, padded 2 - p, is one too)."""
    return (tuple(w_shape[2:]) == (3, 3) and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1)
            and groups == 1 and all(0 <= p <= 2 for p in padding)
            and all(conv_output_size(n, 3, 1, p) >= 1 for n, p in zip(x_shape[2:], padding)))


def transform_filters(w: np.ndarray, m: int) -> np.ndarray:
    """w (O, C, 3, 3) -> U ((m+2)^2, C, O): U[xi*(m+2) + nu, c, o] = (G w[o, c] G^T)[xi, nu].

    Computed in float64 and rounded once to w's dtype: G's 1/6 and 1/24 are not exact in
    float32, and the filters are small, so the extra precision is free."""
    _, G, _ = winograd_matrices(m, np.float64)
    o, c = w.shape[:2]
    u = G @ w.astype(np.float64) @ G.T                  # (O, C, a, a)
    return np.ascontiguousarray(u.reshape(o, c, -1).transpose(2, 1, 0), dtype=w.dtype)


def winograd_conv2d_forward(x: np.ndarray, w: np.ndarray, padding, m: int = 2) -> np.ndarray:
    """x (N, C, H, W), w (O, C, 3, 3), stride 1 -> y (N, O, OH, OW) with F(m x m, 3 x 3)."""
    BT, _, AT = winograd_matrices(m, x.dtype)
    a = m + 2
    n, c, h, wd = x.shape
    (ph, pw), o = padding, w.shape[0]
    oh, ow = conv_output_size(h, 3, 1, ph), conv_output_size(wd, 3, 1, pw)
    th, tw = -(-oh // m), -(-ow // m)                   # tiles down and across (the last may overhang)
    # pad to exactly th*m + 2 rows (tw*m + 2 columns): zeros beyond the image, as the padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, th * m + 2 - h - ph), (pw, tw * m + 2 - wd - pw)))
    tiles = np.lib.stride_tricks.sliding_window_view(xp, (a, a), axis=(2, 3))[:, :, ::m, ::m]
    v = BT @ tiles @ BT.T                               # (N, C, th, tw, a, a)
    v = v.transpose(4, 5, 0, 2, 3, 1).reshape(a * a, n * th * tw, c)
    mm = v @ transform_filters(w, m)                    # (a*a, P, O): the multiply-adds
    mm = mm.reshape(a, a, n, th, tw, o).transpose(2, 5, 3, 4, 0, 1)  # (N, O, th, tw, a, a)
    y = AT @ mm @ AT.T                                  # (N, O, th, tw, m, m)
    y = y.transpose(0, 1, 2, 4, 3, 5).reshape(n, o, th * m, tw * m)
    return np.ascontiguousarray(y[:, :, :oh, :ow])


def flipped_filters(w: np.ndarray) -> np.ndarray:
    """w (O, C, 3, 3) -> (C, O, 3, 3) rotated by 180 degrees: the filters of the input gradient,
    dL/dx = conv2d(grad, flipped_filters(w), padding = 2 - p) for a stride-1 3x3 conv."""
    return np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))


def winograd_conv2d_backward_input(grad: np.ndarray, w: np.ndarray, padding, m: int = 2) -> np.ndarray:
    """grad (N, O, OH, OW), w (O, C, 3, 3) -> dL/dx (N, C, OH + 2 - 2p_h, OW + 2 - 2p_w)."""
    return winograd_conv2d_forward(grad, flipped_filters(w), (2 - padding[0], 2 - padding[1]), m)
