"""Pooling: max, average and their adaptive forms, on (N, C, H, W) or (C, H, W), as PyTorch.

A pool slides a window over every channel plane and keeps one number per window: the max
(the strongest response nearby, a little translation invariance) or the mean (a smoothed,
downsampled map). No weights, so the backward only routes gradients:

* max: each output's gradient goes to the input pixel that won its window (the argmax the
  forward saved), summed where overlapping windows picked the same pixel;
* avg: each output's gradient is spread evenly, grad / divisor, over its window.

The compute lives in ``tinyvision.kernels.{reference,cpu,gpu}.pooling``; this module checks
the arguments (so that no kernel can index outside its arrays) and holds the autograd glue.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tinyvision.autograd.function import Context, Function
from tinyvision.autograd.tensor import Tensor
from tinyvision.functional._util import output_sizes, pair
from tinyvision.kernels.dispatch import kernel

IntOrPair = Any  # int | tuple[int, int]


# --------------------------------------------------------------------------- argument checks

def _check_input(op: str, input: Tensor) -> None:
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(input).__name__}")
    if input.ndim not in (3, 4) or min(input.shape[-2:]) < 1:
        raise ValueError(f"{op}: input must be (N, C, H, W) or (C, H, W) with H, W >= 1, got shape {input.shape}")
    if input.dtype not in (np.float32, np.float64):  # the kernels are compiled for these two
        raise TypeError(f"{op}: input must be float32 or float64, got dtype {input.dtype}; "
                        "cast it first, e.g. input.float()")


def _window_args(op: str, input: Tensor, kernel_size: IntOrPair, stride: IntOrPair | None, padding: IntOrPair,
                 dilation: IntOrPair, ceil_mode: bool) -> tuple[tuple[int, int], ...]:
    """Checked (kernel_size, stride, padding, dilation, output_size) pairs for a windowed pool."""
    _check_input(op, input)
    kernel_size = pair(op, "kernel_size", kernel_size, 1)
    stride = kernel_size if stride is None or stride == () or stride == [] else pair(op, "stride", stride, 1)
    padding, dilation = pair(op, "padding", padding, 0), pair(op, "dilation", dilation, 1)
    if any(p > k // 2 for k, p in zip(kernel_size, padding)):  # torch's rule (dilation not counted)
        raise ValueError(f"{op}: padding should be at most half of kernel_size, got padding={padding}, "
                         f"kernel_size={kernel_size}")
    out = output_sizes(op, input.shape[-2:], kernel_size, stride, padding, dilation, ceil_mode)
    return kernel_size, stride, padding, dilation, out


def _adaptive_size(op: str, input: Tensor, output_size: Any) -> tuple[int, int]:
    """output_size as a pair; None keeps the input's size along that axis, as torch."""
    _check_input(op, input)
    if output_size is None or isinstance(output_size, (int, np.integer)):
        size: tuple = (output_size, output_size)
    elif isinstance(output_size, (tuple, list)):
        size = tuple(output_size)
    else:
        raise TypeError(f"{op}: output_size must be an int or a pair (ints or None), got {output_size!r}")
    if len(size) != 2:
        raise TypeError(f"{op}: output_size must be an int or a pair (ints or None), got {output_size!r}")
    size = tuple(n if s is None else s for s, n in zip(size, input.shape[-2:]))
    return pair(op, "output_size", size, 1)


# --------------------------------------------------------------------------- the ops

class ArgMaxPool(Function):
    """Max over each window (``max_pool2d``) or adaptive bin (``adaptive_max_pool2d``): the
    forward kernel returns the maxima and their argmax pixels, and the backward scatters the
    gradient to those pixels, whichever way the windows were laid out.

    ``indices_sink`` (a list or None) receives the index array so that ``return_indices``
    can hand it out; it carries no gradient.
    """

    @staticmethod
    def forward(ctx: Context, x, forward_kernel, args, indices_sink):
        y, indices = kernel("pooling", forward_kernel, x)(x, *args)
        ctx.save_for_backward(indices)
        ctx.input_shape = x.shape
        if indices_sink is not None:
            indices_sink.append(indices)
        return y

    @staticmethod
    def backward(ctx: Context, grad):  # dL/dx[argmax of window o] += dL/dy[o]
        (indices,) = ctx.saved_tensors
        dx = kernel("pooling", "max_pool2d_backward", grad)(grad, indices, ctx.input_shape)
        return dx, None, None, None


class AvgPool2d(Function):
    """Window sum / divisor; backward spreads grad / divisor over each window."""

    @staticmethod
    def forward(ctx: Context, x, kernel_size, stride, padding, output_size, count_include_pad, divisor_override):
        ctx.args = (kernel_size, stride, padding, count_include_pad, divisor_override)
        ctx.input_shape = x.shape
        return kernel("pooling", "avg_pool2d_forward", x)(x, kernel_size, stride, padding, output_size,
                                                          count_include_pad, divisor_override)

    @staticmethod
    def backward(ctx: Context, grad):
        dx = kernel("pooling", "avg_pool2d_backward", grad)(grad, ctx.input_shape, *ctx.args)
        return dx, None, None, None, None, None, None


class AdaptiveAvgPool2d(Function):
    """Mean over each adaptive bin; backward spreads grad / (bin size) over the bin."""

    @staticmethod
    def forward(ctx: Context, x, output_size):
        ctx.input_shape = x.shape
        return kernel("pooling", "adaptive_avg_pool2d_forward", x)(x, output_size)

    @staticmethod
    def backward(ctx: Context, grad):
        return kernel("pooling", "adaptive_avg_pool2d_backward", grad)(grad, ctx.input_shape), None


def _with_indices(y: Tensor, sink: list, return_indices: bool) -> Any:
    return (y, Tensor(sink[0])) if return_indices else y


def max_pool2d(input: Tensor, kernel_size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0,
               dilation: IntOrPair = 1, ceil_mode: bool = False, return_indices: bool = False) -> Any:
    """Max over ``kernel_size`` windows, as ``torch.nn.functional.max_pool2d``.

    input (N, C, H, W) or (C, H, W) -> (N, C, OH, OW), OH = conv_output_size(H, ..., ceil_mode).
    Padding counts as -inf (it never wins); ``stride`` defaults to ``kernel_size``.
    With ``return_indices`` also returns, per output, the flat index h * W + w of the winning
    input pixel (int64), as torch. A window that holds no input pixel (only possible with
    dilation) gives -inf and index -1, where torch gives -inf and an undefined index.
    Gradient: dL/dx[argmax] += dL/dy, zero elsewhere.
    """
    k, s, p, d, out = _window_args("max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode)
    sink: list = []
    return _with_indices(ArgMaxPool.apply(input, "max_pool2d_forward", (k, s, p, d, out), sink), sink,
                         return_indices)


def avg_pool2d(input: Tensor, kernel_size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0,
               ceil_mode: bool = False, count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """Mean over ``kernel_size`` windows, as ``torch.nn.functional.avg_pool2d``.

    input (N, C, H, W) or (C, H, W) -> (N, C, OH, OW). The divisor of a window is its size
    clipped to the padded input (``count_include_pad=True``, the zero padding counts), or the
    number of real input pixels in it (``False``), or ``divisor_override`` when given.
    Gradient: dL/dx[h, w] = sum over windows containing (h, w) of dL/dy / divisor.
    """
    op = "avg_pool2d"
    if divisor_override is not None and (not isinstance(divisor_override, (int, np.integer)) or divisor_override == 0):
        raise ValueError(f"{op}: divisor_override must be a non-zero int or None, got {divisor_override!r}")
    k, s, p, _, out = _window_args(op, input, kernel_size, stride, padding, 1, ceil_mode)
    return AvgPool2d.apply(input, k, s, p, out, bool(count_include_pad), divisor_override)


def adaptive_avg_pool2d(input: Tensor, output_size: Any) -> Tensor:
    """Mean over ``output_size`` bins that tile the input, as torch: bin i along an axis of
    size n covers [floor(i * n / out), ceil((i + 1) * n / out)). (N, C, H, W) -> (N, C, *output_size)."""
    return AdaptiveAvgPool2d.apply(input, _adaptive_size("adaptive_avg_pool2d", input, output_size))


def adaptive_max_pool2d(input: Tensor, output_size: Any, return_indices: bool = False) -> Any:
    """Max over adaptive bins (see adaptive_avg_pool2d); indices as in max_pool2d."""
    size = _adaptive_size("adaptive_max_pool2d", input, output_size)
    sink: list = []
    return _with_indices(ArgMaxPool.apply(input, "adaptive_max_pool2d_forward", (size,), sink), sink,
                         return_indices)
