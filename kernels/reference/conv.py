"""Convolution in NumPy, written to be read: the specification the faster rungs must match.

Layout is PyTorch's: x (N, C, H, W), weight (O, C // groups, KH, KW), y (N, O, OH, OW), with

    OH = (H + 2 * padding_h - dilation_h * (KH - 1) - 1) // stride_h + 1        (OW likewise)

    y[n, o, i, j] = sum_{c, kh, kw} w[o, c, kh, kw]
                    * x_pad[n, g * Cg + c, i * s_h + kh * d_h, j * s_w + kw * d_w]

where g = o // Og is the group of output channel o (Cg = C // groups input channels and
Og = O // groups output channels per group). Every argument here is already checked and
normalised to a pair (``tinyvision.functional.conv`` does that); padding is symmetric.

Two ways to compute it, both below:

1. ``conv2d_forward_loops``: the seven nested loops of the formula (for tiny inputs only).
2. im2col + GEMM: copy every receptive field into a column, ``cols`` (N, C*KH*KW, OH*OW), then
   one matrix product per group does all the multiply-adds: y = W (O, C*KH*KW) @ cols.

The two gradients reuse the same pieces (grad = dL/dy, shape (N, O, OH, OW)):

* dL/dW = grad @ cols^T, summed over the batch: a correlation of the input with the gradient.
* dL/dx = col2im(W^T @ grad): each column's gradient is added back to the pixels it was
  copied from, which is a transposed convolution of the gradient with W.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

# The ladder: what every rung of this op defines with one signature and kernels/dispatch.py
# reaches by name (tests/test_kernels_ladder.py checks that the rungs agree).
__all__ = ["conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight", "im2col", "col2im"]

Pair = tuple[int, int]


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1,
                     ceil_mode: bool = False) -> int:
    """Output length along one axis of every sliding window (conv, pool, unfold): how many
    positions of the dilated kernel (extent d (k - 1) + 1) fit in the padded input,

        floor_or_ceil((size + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1.

    ``ceil_mode`` (pooling only) keeps a last partial window, unless it would start inside the
    right padding: then it covers no input pixel, and PyTorch drops it.
    """
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def conv_transpose_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1,
                               output_padding: int = 0) -> int:
    """Output length along one axis of a transposed convolution (the size whose conv has
    ``size`` outputs, the largest choice picked by ``output_padding`` < stride):

        (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1
    """
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def conv2d_flops(x_shape: tuple, w_shape: tuple, stride: Pair, padding: Pair, dilation: Pair,
                 groups: int) -> int:
    """2 * multiply-adds of the forward pass (each gradient costs the same again)."""
    n, _, h, w = x_shape
    o, cg, kh, kw = w_shape
    oh = conv_output_size(h, kh, stride[0], padding[0], dilation[0])
    ow = conv_output_size(w, kw, stride[1], padding[1], dilation[1])
    return 2 * n * o * oh * ow * cg * kh * kw


# --------------------------------------------------------------------------- seven loops
def conv2d_forward_loops(x: np.ndarray, w: np.ndarray, stride: Pair, padding: Pair,
                         dilation: Pair, groups: int) -> np.ndarray:
    """The formula above as plain loops: (N, C, H, W) -> (N, O, OH, OW). Slow; for tiny inputs."""
    n_, c_, h_, w_ = x.shape
    o_, cg, kh_, kw_ = w.shape
    og = o_ // groups
    oh_ = conv_output_size(h_, kh_, stride[0], padding[0], dilation[0])
    ow_ = conv_output_size(w_, kw_, stride[1], padding[1], dilation[1])
    y = np.zeros((n_, o_, oh_, ow_), dtype=np.result_type(x, w))
    for n in range(n_):                                  # 1. image
        for o in range(o_):                              # 2. output channel
            g = o // og
            for i in range(oh_):                         # 3. output row
                for j in range(ow_):                     # 4. output column
                    acc = 0.0
                    for c in range(cg):                  # 5. input channel of this group
                        for kh in range(kh_):            # 6. kernel row
                            for kw in range(kw_):        # 7. kernel column
                                ih = i * stride[0] + kh * dilation[0] - padding[0]
                                iw = j * stride[1] + kw * dilation[1] - padding[1]
                                if 0 <= ih < h_ and 0 <= iw < w_:  # outside = zero padding
                                    acc += w[o, c, kh, kw] * x[n, g * cg + c, ih, iw]
                    y[n, o, i, j] = acc
    return y


# --------------------------------------------------------------------------- im2col / col2im
def _window_slices(kh: int, kw: int, out_hw: Pair, stride: Pair, dilation: Pair):
    """For kernel tap (i, j): the strided slice of the padded image that it reads, one entry
    per output position. Tap (i, j) at output (r, s) reads x_pad[r*s_h + i*d_h, s*s_w + j*d_w]."""
    for i in range(kh):
        for j in range(kw):
            top, left = i * dilation[0], j * dilation[1]
            yield i, j, (slice(top, top + stride[0] * (out_hw[0] - 1) + 1, stride[0]),
                         slice(left, left + stride[1] * (out_hw[1] - 1) + 1, stride[1]))


def im2col(x: np.ndarray, kernel_size: Pair, stride: Pair, padding: Pair, dilation: Pair) -> np.ndarray:
    """Receptive fields as columns (``torch.nn.functional.unfold``'s layout).

    x (N, C, H, W) -> cols (N, C*KH*KW, OH*OW); row c*KH*KW + i*KW + j of column r*OW + s is
    x_pad[n, c, r*s_h + i*d_h, s*s_w + j*d_w].

    ``sliding_window_view`` gives every (dilated) window as a view without copying; the final
    reshape makes the one copy: (N, C, KH, KW, OH, OW) contiguous, KH*KW times the input.
    """
    kh, kw = kernel_size
    ph, pw = padding
    x_pad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    span = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    windows = np.lib.stride_tricks.sliding_window_view(x_pad, span, axis=(2, 3))
    # (N, C, H', W', span_h, span_w) -> keep every stride-th window and every dilation-th tap
    windows = windows[:, :, ::stride[0], ::stride[1], ::dilation[0], ::dilation[1]]
    n, c, oh, ow = windows.shape[:4]
    return windows.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, oh * ow)


def col2im(cols: np.ndarray, x_shape: tuple, kernel_size: Pair, stride: Pair, padding: Pair,
           dilation: Pair) -> np.ndarray:
    """The adjoint of im2col (``torch.nn.functional.fold``): cols (N, C*KH*KW, OH*OW) -> (N, C, H, W).

    Every column entry is added back to the pixel it came from; pixels shared by overlapping
    windows receive the sum. One strided slice-add per kernel tap: within a tap the output
    positions read distinct pixels, so ``+=`` on the slice never collides with itself.
    """
    n, c, h, w = x_shape
    kh, kw = kernel_size
    ph, pw = padding
    oh = conv_output_size(h, kh, stride[0], ph, dilation[0])
    ow = conv_output_size(w, kw, stride[1], pw, dilation[1])
    taps = cols.reshape(n, c, kh, kw, oh, ow)
    x_pad = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    for i, j, (rows, columns) in _window_slices(kh, kw, (oh, ow), stride, dilation):
        x_pad[:, :, rows, columns] += taps[:, :, i, j]
    return x_pad[:, :, ph:ph + h, pw:pw + w]


# --------------------------------------------------------------------------- GEMM form
# Written once for any im2col/col2im pair and any array module: the GPU rung calls these same
# three functions with its CUDA im2col/col2im and CuPy arrays (cuBLAS does the products).
Im2col = Callable[..., np.ndarray]


def gemm_conv2d_forward(im2col: Im2col, x, w, stride: Pair, padding: Pair, dilation: Pair, groups: int):
    """y[n, g] = W_g (Og, Cg*KH*KW) @ cols[n, g] (Cg*KH*KW, OH*OW), batched over n and g."""
    n, _, h, wd = x.shape
    o, cg, kh, kw = w.shape
    oh = conv_output_size(h, kh, stride[0], padding[0], dilation[0])
    ow = conv_output_size(wd, kw, stride[1], padding[1], dilation[1])
    cols = im2col(x, (kh, kw), stride, padding, dilation).reshape(n, groups, cg * kh * kw, oh * ow)
    y = w.reshape(groups, o // groups, cg * kh * kw) @ cols   # (N, G, Og, OH*OW)
    return y.reshape(n, o, oh, ow)


def gemm_conv2d_backward_input(col2im: Im2col, grad, w, x_shape: tuple, stride: Pair, padding: Pair,
                               dilation: Pair, groups: int):
    """dL/dx = col2im(W_g^T @ grad[n, g]): the transposed convolution of grad with W."""
    n, o, oh, ow = grad.shape
    _, cg, kh, kw = w.shape
    wt = w.reshape(groups, o // groups, cg * kh * kw).transpose(0, 2, 1)  # (G, Cg*KH*KW, Og)
    dcols = wt @ grad.reshape(n, groups, o // groups, oh * ow)            # (N, G, Cg*KH*KW, L)
    return col2im(dcols.reshape(n, groups * cg * kh * kw, oh * ow), x_shape, (kh, kw), stride,
                  padding, dilation)


def gemm_conv2d_backward_weight(im2col: Im2col, grad, x, w_shape: tuple, stride: Pair, padding: Pair,
                                dilation: Pair, groups: int):
    """dL/dW_g = sum_n grad[n, g] (Og, L) @ cols[n, g]^T (L, Cg*KH*KW): input correlated with grad."""
    n, o, oh, ow = grad.shape
    _, cg, kh, kw = w_shape
    cols = im2col(x, (kh, kw), stride, padding, dilation).reshape(n, groups, cg * kh * kw, oh * ow)
    g = grad.reshape(n, groups, o // groups, oh * ow)
    return (g @ cols.swapaxes(-1, -2)).sum(axis=0).reshape(w_shape)  # (N, G, Og, K) summed over n


def conv2d_forward(x: np.ndarray, w: np.ndarray, stride: Pair, padding: Pair, dilation: Pair,
                   groups: int) -> np.ndarray:
    """(N, C, H, W), (O, C/groups, KH, KW) -> (N, O, OH, OW), no bias."""
    return gemm_conv2d_forward(im2col, x, w, stride, padding, dilation, groups)


def conv2d_backward_input(grad: np.ndarray, w: np.ndarray, x_shape: tuple, stride: Pair, padding: Pair,
                          dilation: Pair, groups: int) -> np.ndarray:
    """grad (N, O, OH, OW), w (O, C/groups, KH, KW) -> dL/dx of shape ``x_shape``."""
    return gemm_conv2d_backward_input(col2im, grad, w, x_shape, stride, padding, dilation, groups)


def conv2d_backward_weight(grad: np.ndarray, x: np.ndarray, w_shape: tuple, stride: Pair, padding: Pair,
                           dilation: Pair, groups: int) -> np.ndarray:
    """grad (N, O, OH, OW), x (N, C, H, W) -> dL/dW of shape ``w_shape``."""
    return gemm_conv2d_backward_weight(im2col, grad, x, w_shape, stride, padding, dilation, groups)
