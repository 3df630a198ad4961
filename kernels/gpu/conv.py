"""Convolution on a CUDA device: CUDA im2col/col2im kernels + cuBLAS batched GEMMs (CuPy).

Same functions and signatures as ``tinyvision.kernels.reference.conv``, and the same GEMM
form: the three ``gemm_conv2d_*`` functions there are written for any array module, so this
rung only supplies the two data-movement kernels, one CUDA thread per element:

* ``im2col``: one thread per column entry (n, c, kh, kw, oh, ow) reads its pixel (or 0).
* ``col2im``: one thread per *input pixel* gathers the column entries that were copied from
  it (the taps with ih = oh*s + kh*d - p, i.e. oh = (ih + p - kh*d) / s when that divides).
  Gathering instead of scattering needs no atomics and gives a deterministic sum.

The products ``W @ cols`` then run as one cuBLAS strided-batched GEMM over (n, group).
This module imports without CuPy; the kernels compile at their first call.
"""
from __future__ import annotations

import functools

from tinyvision.kernels.compat import cupy
from tinyvision.kernels.reference.conv import (Pair, conv_output_size, gemm_conv2d_backward_input,
                                               gemm_conv2d_backward_weight, gemm_conv2d_forward)

# The ladder: what every rung of this op defines with one signature and kernels/dispatch.py
# reaches by name (tests/test_kernels_ladder.py checks that the rungs agree).
__all__ = ["conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight", "im2col", "col2im"]

_GEOMETRY = ("int32 C, int32 H, int32 W, int32 KH, int32 KW, int32 OH, int32 OW, "
             "int32 sh, int32 sw, int32 ph, int32 pw, int32 dh, int32 dw")

_IM2COL_BODY = """
    // i runs over cols (N, C, KH, KW, OH, OW) in C order
    ptrdiff_t t = i;
    const int ow = t % OW; t /= OW;
    const int oh = t % OH; t /= OH;
    const int kw = t % KW; t /= KW;
    const int kh = t % KH; t /= KH;
    const int c = t % C;
    const ptrdiff_t n = t / C;
    const int ih = oh * sh + kh * dh - ph;
    const int iw = ow * sw + kw * dw - pw;
    col = (ih >= 0 && ih < H && iw >= 0 && iw < W) ? x[((n * C + c) * H + ih) * W + iw] : (T)0;
"""

_COL2IM_BODY = """
    // i runs over x (N, C, H, W); sum every column entry that im2col copied from pixel i
    ptrdiff_t t = i;
    const int iw = t % W; t /= W;
    const int ih = t % H; t /= H;
    const ptrdiff_t nc = t;  // n * C + c
    T acc = 0;
    for (int kh = 0; kh < KH; ++kh) {
        const int rh = ih + ph - kh * dh;  // = oh * sh for the output row that used this tap
        if (rh < 0 || rh % sh != 0 || rh / sh >= OH) continue;
        for (int kw = 0; kw < KW; ++kw) {
            const int rw = iw + pw - kw * dw;
            if (rw < 0 || rw % sw != 0 || rw / sw >= OW) continue;
            acc += col[((nc * KH + kh) * KW + kw) * OH * OW + (ptrdiff_t)(rh / sh) * OW + rw / sw];
        }
    }
    x = acc;
"""


@functools.cache
def _kernels():
    """Compile the two ElementwiseKernels once (CuPy caches the binaries on disk)."""
    if cupy is None:
        from tinyvision.kernels.compat import gpu_unavailable_reason

        raise RuntimeError(f"the GPU conv kernels need CuPy: {gpu_unavailable_reason()}")
    im2col_k = cupy.ElementwiseKernel(f"raw T x, {_GEOMETRY}", "T col", _IM2COL_BODY, "tinyvision_im2col")
    col2im_k = cupy.ElementwiseKernel(f"raw T col, {_GEOMETRY}", "T x", _COL2IM_BODY, "tinyvision_col2im")
    return im2col_k, col2im_k


def _geometry(x_shape: tuple, kernel_size: Pair, stride: Pair, padding: Pair, dilation: Pair) -> tuple:
    _, c, h, w = x_shape
    oh = conv_output_size(h, kernel_size[0], stride[0], padding[0], dilation[0])
    ow = conv_output_size(w, kernel_size[1], stride[1], padding[1], dilation[1])
    return (c, h, w, *kernel_size, oh, ow, *stride, *padding, *dilation)


def im2col(x, kernel_size: Pair, stride: Pair, padding: Pair, dilation: Pair):
    """x (N, C, H, W) -> cols (N, C*KH*KW, OH*OW), ``unfold``'s layout."""
    geometry = _geometry(x.shape, kernel_size, stride, padding, dilation)
    c, (kh, kw), (oh, ow) = geometry[0], kernel_size, geometry[5:7]
    cols = cupy.empty((x.shape[0], c * kh * kw, oh * ow), dtype=x.dtype)
    _kernels()[0](cupy.ascontiguousarray(x), *geometry, cols)
    return cols


def col2im(cols, x_shape: tuple, kernel_size: Pair, stride: Pair, padding: Pair, dilation: Pair):
    """cols (N, C*KH*KW, OH*OW) -> x (N, C, H, W), overlapping entries summed (``fold``)."""
    x = cupy.empty(tuple(x_shape), dtype=cols.dtype)
    _kernels()[1](cupy.ascontiguousarray(cols), *_geometry(x_shape, kernel_size, stride, padding, dilation), x)
    return x


def conv2d_forward(x, w, stride: Pair, padding: Pair, dilation: Pair, groups: int):
    """(N, C, H, W), (O, C/groups, KH, KW) -> (N, O, OH, OW)."""
    return gemm_conv2d_forward(im2col, x, w, stride, padding, dilation, groups)


def conv2d_backward_input(grad, w, x_shape: tuple, stride: Pair, padding: Pair, dilation: Pair, groups: int):
    """grad (N, O, OH, OW) -> dL/dx of shape ``x_shape``."""
    return gemm_conv2d_backward_input(col2im, grad, w, x_shape, stride, padding,
                                      dilation, groups)


def conv2d_backward_weight(grad, x, w_shape: tuple, stride: Pair, padding: Pair, dilation: Pair, groups: int):
    """grad (N, O, OH, OW), x (N, C, H, W) -> dL/dW of shape ``w_shape``."""
    return gemm_conv2d_backward_weight(im2col, grad, x, w_shape, stride, padding,
                                       dilation, groups)
