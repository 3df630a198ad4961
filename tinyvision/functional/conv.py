"""Convolution: ``conv1d``, ``conv2d``, ``conv3d``, ``conv_transpose2d``, ``unfold`` and ``fold``
(PyTorch's signatures, NCHW).

The arithmetic lives in the kernels (``tinyvision.kernels.{reference,cpu,gpu}.conv``, reached
through ``kernel("conv", name, array)``); this file checks the arguments, so that no kernel
ever sees a shape it could index out of bounds, and pairs each forward with its backward.
With grad = dL/dy:

    conv2d            y  = x (*) W                    (a correlation, as in PyTorch)
                      dx = conv_transpose2d(grad, W)  (col2im of W^T grad)
                      dW = x (*) grad                 (correlation of the input with grad)
                      db = sum of grad over N, OH, OW
    conv_transpose2d  is conv2d's dx as a forward, so its backward is conv2d's forward (for dx)
                      and conv2d's dW with the roles of input and gradient swapped.
    unfold / fold     im2col and its adjoint col2im, each the other's backward.
    conv1d            conv2d on a height-1 image (a unit axis added to x and W).
    conv3d            a sum over the kernel's depth taps of conv2d's on strided depth slices
                      (``Conv3d``); every rung of the conv2d ladder serves it unchanged.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from tinyvision.autograd.function import Context, Function
from tinyvision.autograd.tensor import Tensor
from tinyvision.functional._util import ntuple, output_sizes, pair
from tinyvision.functional.shape import pad
from tinyvision.kernels.compat import array_module, device_of
from tinyvision.kernels.dispatch import kernel
from tinyvision.kernels.reference.conv import conv_output_size, conv_transpose_output_size

IntOrPair = int | Sequence[int]


# --------------------------------------------------------------------------- argument checks
def _check_groups(op: str, groups: Any) -> int:
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    return int(groups)


def _check_operands(op: str, input: Tensor, weight: Tensor, bias: Tensor | None, out_channels: int,
                    rank: int = 4) -> None:
    """Same float dtype and device for all; weight ``rank``-D; bias (out_channels,)."""
    if not isinstance(weight, Tensor) or weight.ndim != rank:
        raise ValueError(f"{op}: weight must be {rank}-D, got shape {getattr(weight, 'shape', None)}")
    if 0 in weight.shape:  # a 0-size kernel would "convolve" to the bias alone; PyTorch refuses too
        raise ValueError(f"{op}: weight of shape {weight.shape} has a zero-size dim; channels and "
                         "kernel size must be >= 1")
    for name, t in (("input", input), ("weight", weight), ("bias", bias)):
        if t is None:
            continue
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")
        _check_float(op, name, t)
        if t.dtype != input.dtype:
            raise TypeError(f"{op}: {name} is {t.dtype} but input is {input.dtype}; "
                            "all operands must share one dtype")
        if device_of(t.data) != device_of(input.data):
            raise RuntimeError(f"{op}: {name} is on {device_of(t.data)} but input is on {device_of(input.data)}")
    if bias is not None and bias.shape != (out_channels,):
        raise ValueError(f"{op}: bias must have shape ({out_channels},) for {out_channels} output "
                         f"channels, got {bias.shape}")


def _check_float(op: str, name: str, t: Tensor) -> None:
    if t.dtype not in (np.float32, np.float64):
        raise TypeError(f"{op}: {name} must be float32 or float64, got {t.dtype}")


def _batched(op: str, input: Tensor, ranks: tuple[int, int], layout: str) -> tuple[Tensor, bool]:
    """Accept an unbatched input (one rank less) by adding N = 1; returns (input, was_unbatched)."""
    if input.ndim not in ranks:
        raise ValueError(f"{op}: input must be {ranks[1]}-D {layout} (or {ranks[0]}-D without the "
                         f"batch dim), got shape {input.shape}")
    unbatched = input.ndim == ranks[0]
    if 0 in input.shape[1 - unbatched:]:  # only the batch may be empty, as in PyTorch
        raise ValueError(f"{op}: input of shape {input.shape} has a zero-size dim; only the batch "
                         "dim may be 0")
    return (input.reshape((1,) + input.shape) if unbatched else input), unbatched


def _unbatch(out: Tensor, unbatched: bool) -> Tensor:
    return out.reshape(out.shape[1:]) if unbatched else out


def _fit(a, hw: tuple[int, int]):
    """Crop or zero-extend the last two axes of a raw array to ``hw`` (at the bottom/right)."""
    a = a[..., :hw[0], :hw[1]]
    extra = ((0, 0),) * (a.ndim - 2) + ((0, hw[0] - a.shape[-2]), (0, hw[1] - a.shape[-1]))
    return array_module(a).pad(a, extra) if any(e for _, e in extra) else a


# --------------------------------------------------------------------------- the Functions
class Conv2d(Function):
    @staticmethod
    def forward(ctx: Context, x, w, b, stride, padding, dilation, groups):
        """x (N, C, H, W), w (O, C/groups, KH, KW), b (O,) or None -> (N, O, OH, OW)."""
        ctx.args = (stride, padding, dilation, groups)
        ctx.save_for_backward(x, w)
        y = kernel("conv", "conv2d_forward", x)(x, w, stride, padding, dilation, groups)
        return y if b is None else y + b.reshape(1, -1, 1, 1)

    @staticmethod
    def backward(ctx: Context, grad):
        x, w = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        # dx: the transposed convolution of grad with W;  dW: x correlated with grad
        dx = kernel("conv", "conv2d_backward_input", grad)(grad, w, x.shape, *ctx.args) if need_x else None
        dw = kernel("conv", "conv2d_backward_weight", grad)(grad, x, w.shape, *ctx.args) if need_w else None
        db = grad.sum(axis=(0, 2, 3)) if need_b else None  # b is added at every (n, i, j)
        return dx, dw, db


class ConvTranspose2d(Function):
    @staticmethod
    def forward(ctx: Context, x, w, b, stride, padding, dilation, groups, out_hw):
        """x (N, Cin, H, W), w (Cin, Cout/groups, KH, KW) -> (N, Cout, *out_hw): conv2d's dx.

        Seen as conv2d(y, w), the output y has conv size H + output_padding // stride rows:
        more than H when output_padding >= stride (allowed when it is < dilation). The extra
        rows of that conv's output meet no input pixel, so x is zero-extended to match."""
        ctx.args = (stride, padding, dilation, groups)
        ctx.x_hw = x.shape[2:]
        x = _fit(x, tuple(conv_output_size(n, k, s, p, d) for n, k, s, p, d in
                          zip(out_hw, w.shape[2:], stride, padding, dilation)))
        ctx.save_for_backward(x, w)
        y_shape = (x.shape[0], w.shape[1] * groups) + tuple(out_hw)
        y = kernel("conv", "conv2d_backward_input", x)(x, w, y_shape, *ctx.args)
        return y if b is None else y + b.reshape(1, -1, 1, 1)

    @staticmethod
    def backward(ctx: Context, grad):
        """grad (N, Cout, OH, OW). The forward was the adjoint of conv2d(., w), so
        dx = conv2d(grad, w) (cropped back to x's size) and dW is conv2d's dW with x as the
        output gradient and grad as the input."""
        x, w = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        dx = _fit(kernel("conv", "conv2d_forward", grad)(grad, w, *ctx.args), ctx.x_hw) if need_x else None
        dw = kernel("conv", "conv2d_backward_weight", x)(x, grad, w.shape, *ctx.args) if need_w else None
        db = grad.sum(axis=(0, 2, 3)) if need_b else None
        return dx, dw, db


class Conv3d(Function):
    """conv3d as a sum of conv2d's over the kernel's depth taps (the "generalised im2col"):

        y[:, :, od] = sum_kd conv2d(x_pad[:, :, od * sd + kd * dd], w[:, :, kd])

    For one tap kd, the input slices of every output depth od are gathered at once (a strided
    slice along D), folded into the batch, (N * OD, C, H, W), and sent through the conv2d
    kernel of the ladder. So KD kernel calls do the work, and the backward is the same sum:
    dW[:, :, kd] = conv2d's dW of that tap; dx gets conv2d's dx of each tap added back at the
    depths the tap read (distinct depths within one tap, so a strided += is exact)."""

    @staticmethod
    def forward(ctx: Context, x, w, b, stride, padding, dilation, groups):
        xp = array_module(x)
        (sd, *s2), (pd, *p2), (dd, *d2) = stride, padding, dilation
        args2 = (tuple(s2), tuple(p2), tuple(d2), groups)
        depth = x.shape[2]
        x = xp.pad(x, ((0, 0), (0, 0), (pd, pd), (0, 0), (0, 0))) if pd else x
        od = conv_output_size(depth, w.shape[2], sd, pd, dd)
        ctx.save_for_backward(x, w)
        ctx.args, ctx.depth, ctx.od = (stride, padding, dilation, groups), depth, od
        y = 0
        for kd in range(w.shape[2]):
            y = y + kernel("conv", "conv2d_forward", x)(_depth_slices(x, kd * dd, sd, od),
                                                        xp.ascontiguousarray(w[:, :, kd]), *args2)
        y = _unfold_depth(y, x.shape[0], od)
        return y if b is None else y + b.reshape(1, -1, 1, 1, 1)

    @staticmethod
    def backward(ctx: Context, grad):
        x, w = ctx.saved_tensors
        xp = array_module(grad)
        (sd, *s2), (pd, *p2), (dd, *d2), groups = ctx.args
        args2 = (tuple(s2), tuple(p2), tuple(d2), groups)
        n, c, od = x.shape[0], x.shape[1], ctx.od
        need_x, need_w, need_b = ctx.needs_input_grad
        g = xp.ascontiguousarray(xp.moveaxis(grad, 2, 1)).reshape((n * od,) + grad.shape[1:2] + grad.shape[3:])
        dx = xp.zeros_like(x) if need_x else None
        dw = xp.zeros_like(w) if need_w else None
        for kd in range(w.shape[2]):
            wk = xp.ascontiguousarray(w[:, :, kd])
            if need_x:
                dxs = kernel("conv", "conv2d_backward_input", g)(g, wk, (n * od, c) + x.shape[3:], *args2)
                dx[:, :, kd * dd:kd * dd + (od - 1) * sd + 1:sd] += _unfold_depth(dxs, n, od)
            if need_w:
                xs = _depth_slices(x, kd * dd, sd, od)
                dw[:, :, kd] = kernel("conv", "conv2d_backward_weight", g)(g, xs, wk.shape, *args2)
        if dx is not None and pd:
            dx = dx[:, :, pd:pd + ctx.depth]
        db = grad.sum(axis=(0, 2, 3, 4)) if need_b else None
        return dx, dw, db


def _depth_slices(x, start: int, step: int, count: int):
    """x (N, C, D, H, W) at depths start, start + step, ... (count of them), folded into the
    batch: (N * count, C, H, W), sample-major (n * count + od)."""
    xp = array_module(x)
    s = x[:, :, start:start + (count - 1) * step + 1:step]
    return xp.ascontiguousarray(xp.moveaxis(s, 2, 1)).reshape((-1,) + x.shape[1:2] + x.shape[3:])


def _unfold_depth(y, n: int, count: int):
    """(N * count, O, H, W) -> (N, O, count, H, W): the inverse of _depth_slices' folding."""
    return array_module(y).moveaxis(y.reshape((n, count) + y.shape[1:]), 1, 2)


class Unfold(Function):
    @staticmethod
    def forward(ctx: Context, x, kernel_size, dilation, padding, stride):
        """x (N, C, H, W) -> (N, C*KH*KW, L): im2col."""
        ctx.args, ctx.x_shape = (kernel_size, stride, padding, dilation), x.shape
        return kernel("conv", "im2col", x)(x, kernel_size, stride, padding, dilation)

    @staticmethod
    def backward(ctx: Context, grad):  # the adjoint of a copy adds the copies back: col2im
        return kernel("conv", "col2im", grad)(grad, ctx.x_shape, *ctx.args)


class Fold(Function):
    @staticmethod
    def forward(ctx: Context, cols, x_shape, kernel_size, dilation, padding, stride):
        """cols (N, C*KH*KW, L) -> (N, C, H, W): col2im, overlapping entries summed."""
        ctx.args = (kernel_size, stride, padding, dilation)
        return kernel("conv", "col2im", cols)(cols, x_shape, *ctx.args)

    @staticmethod
    def backward(ctx: Context, grad):  # each column entry is a copy of one output pixel's gradient
        return kernel("conv", "im2col", grad)(grad, *ctx.args)


# --------------------------------------------------------------------------- public functions
def padding_widths(padding: Sequence[int] | str, kernel_size: Sequence[int],
                   dilation: Sequence[int]) -> tuple[int, ...]:
    """The widths that a padding tuple, 'valid' or 'same' means, in ``F.pad``'s order (last
    axis first: (left, right, top, bottom, front, back)). 'same' needs d (k - 1) in all along
    each axis; an odd total puts the extra pixel on the right / bottom / back, as PyTorch."""
    widths: list[int] = []
    for i in reversed(range(len(kernel_size))):
        if padding == "valid":
            widths += [0, 0]
        elif padding == "same":
            total = dilation[i] * (kernel_size[i] - 1)
            widths += [total // 2, total - total // 2]
        else:
            widths += [padding[i], padding[i]]
    return tuple(widths)


_LAYOUTS = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}


def _conv_arguments(op: str, input: Tensor, weight: Tensor, bias: Tensor | None, stride: Any, padding: Any,
                    dilation: Any, groups: Any, k: int) -> tuple:
    """Checks shared by conv1d/2d/3d (k spatial dims). Returns (x, unbatched, stride, padding,
    dilation, groups) with the tuples of length k; a 'same' padding with an odd total is
    applied to x here (the extra pixel at the end), the symmetric part is left in ``padding``."""
    x, unbatched = _batched(op, input, (k + 1, k + 2), _LAYOUTS[k])
    groups = _check_groups(op, groups)
    _check_operands(op, x, weight, bias, weight.shape[0] if getattr(weight, "ndim", 0) == k + 2 else 0, k + 2)
    stride, dilation = ntuple(op, "stride", stride, k, 1), ntuple(op, "dilation", dilation, k, 1)
    kernel_size = weight.shape[2:]
    if x.shape[1] != weight.shape[1] * groups:
        raise ValueError(f"{op}: input has {x.shape[1]} channels (shape {x.shape}) but weight of shape "
                         f"{weight.shape} with groups={groups} expects {weight.shape[1] * groups} "
                         f"(= weight.shape[1] {weight.shape[1]} * groups {groups})")
    if weight.shape[0] % groups:
        raise ValueError(f"{op}: weight has {weight.shape[0]} output channels, not divisible by groups={groups}")
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(f"{op}: padding must be an int, a tuple, 'same' or 'valid', got {padding!r}")
        if padding == "same" and stride != (1,) * k:
            raise ValueError(f"{op}: padding='same' needs stride 1, got stride={stride}")
        widths = padding_widths(padding, kernel_size, dilation)
        lo, hi = widths[0::2][::-1], widths[1::2][::-1]  # per axis, first axis first
        padding = tuple(lo)
        if hi != lo:  # odd total: one more at the end, padded here
            extra: list[int] = []
            for i in reversed(range(k)):
                extra += [0, hi[i] - lo[i]]
            x = pad(x, tuple(extra))
    else:
        padding = ntuple(op, "padding", padding, k, 0)
    output_sizes(op, x.shape[2:], kernel_size, stride, padding, dilation)
    return x, unbatched, stride, padding, dilation, groups


def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: IntOrPair = 1,
           padding: IntOrPair | str = 0, dilation: IntOrPair = 1, groups: int = 1) -> Tensor:
    """1-D cross-correlation, as ``torch.nn.functional.conv1d``: input (N, C, L) or (C, L),
    weight (O, C/groups, K), bias (O,) -> (N, O, OL).

    It is conv2d on a height-1 image: x (N, C, 1, L) and w (O, C/groups, 1, K), with stride,
    padding and dilation 1, 0, 1 along the unit axis, so it runs on the same kernel ladder
    and its backward is conv2d's (the reshapes are views in the graph).
    """
    x, unbatched, stride, padding, dilation, groups = _conv_arguments(
        "conv1d", input, weight, bias, stride, padding, dilation, groups, 1)
    y = Conv2d.apply(x.unsqueeze(2), weight.unsqueeze(2), bias, stride=(1,) + stride, padding=(0,) + padding,
                     dilation=(1,) + dilation, groups=groups)
    return _unbatch(y.squeeze(2), unbatched)


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: IntOrPair = 1,
           padding: IntOrPair | str = 0, dilation: IntOrPair = 1, groups: int = 1) -> Tensor:
    """2-D cross-correlation, as ``torch.nn.functional.conv2d``.

    input (N, C, H, W) or (C, H, W); weight (O, C/groups, KH, KW); bias (O,) -> (N, O, OH, OW)
    with OH = (H + 2*padding - dilation*(KH - 1) - 1) // stride + 1. ``padding`` may also be
    'valid' (0) or 'same' (output size = input size; stride 1 only; an odd total padding puts
    the extra row/column at the bottom/right, as PyTorch does).
    """
    x, unbatched, stride, padding, dilation, groups = _conv_arguments(
        "conv2d", input, weight, bias, stride, padding, dilation, groups, 2)
    return _unbatch(Conv2d.apply(x, weight, bias, stride=stride, padding=padding, dilation=dilation,
                                 groups=groups), unbatched)


def conv3d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1,
           padding: Any = 0, dilation: Any = 1, groups: int = 1) -> Tensor:
    """3-D cross-correlation, as ``torch.nn.functional.conv3d``: input (N, C, D, H, W) or
    (C, D, H, W), weight (O, C/groups, KD, KH, KW), bias (O,) -> (N, O, OD, OH, OW).

    Computed as KD conv2d's on the same kernel ladder (see ``Conv3d`` and docs/convolution.md).
    """
    x, unbatched, stride, padding, dilation, groups = _conv_arguments(
        "conv3d", input, weight, bias, stride, padding, dilation, groups, 3)
    return _unbatch(Conv3d.apply(x, weight, bias, stride=stride, padding=padding, dilation=dilation,
                                 groups=groups), unbatched)


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: IntOrPair = 1,
                     padding: IntOrPair = 0, output_padding: IntOrPair = 0, groups: int = 1,
                     dilation: IntOrPair = 1) -> Tensor:
    """The transposed convolution (the gradient of conv2d w.r.t. its input), as PyTorch's.

    input (N, Cin, H, W) or (Cin, H, W); weight (Cin, Cout/groups, KH, KW); bias (Cout,) ->
    (N, Cout, OH, OW), OH = (H - 1)*stride - 2*padding + dilation*(KH - 1) + output_padding + 1.
    ``output_padding`` (< stride or < dilation) picks among the sizes that conv2d maps to H.
    """
    op = "conv_transpose2d"
    x, unbatched = _batched(op, input, (3, 4), "(N, C, H, W)")
    groups = _check_groups(op, groups)
    _check_operands(op, x, weight, bias, weight.shape[1] * groups if weight.ndim == 4 else 0)
    stride, dilation = pair(op, "stride", stride, 1), pair(op, "dilation", dilation, 1)
    padding, output_padding = pair(op, "padding", padding, 0), pair(op, "output_padding", output_padding, 0)
    if x.shape[1] != weight.shape[0]:
        raise ValueError(f"{op}: input has {x.shape[1]} channels (shape {x.shape}) but weight of shape "
                         f"{weight.shape} expects {weight.shape[0]} (= weight.shape[0])")
    if weight.shape[0] % groups:
        raise ValueError(f"{op}: weight has {weight.shape[0]} input channels, not divisible by groups={groups}")
    for axis in range(2):
        if output_padding[axis] >= max(stride[axis], dilation[axis]):
            raise ValueError(f"{op}: output_padding {output_padding} must be smaller than stride {stride} "
                             f"or dilation {dilation}")
    out_hw = tuple(conv_transpose_output_size(x.shape[2 + a], weight.shape[2 + a], stride[a], padding[a],
                                              dilation[a], output_padding[a]) for a in range(2))
    if min(out_hw) < 1:
        raise ValueError(f"{op}: output size would be {out_hw}: (input {x.shape[2:]} - 1) * stride {stride} "
                         f"- 2 * padding {padding} + dilation {dilation} * (kernel_size {weight.shape[2:]} - 1) "
                         f"+ output_padding {output_padding} + 1 < 1")
    return _unbatch(ConvTranspose2d.apply(x, weight, bias, stride=stride, padding=padding, dilation=dilation,
                                          groups=groups, out_hw=out_hw), unbatched)


def unfold(input: Tensor, kernel_size: IntOrPair, dilation: IntOrPair = 1, padding: IntOrPair = 0,
           stride: IntOrPair = 1) -> Tensor:
    """im2col, as ``torch.nn.functional.unfold``: (N, C, H, W) -> (N, C*KH*KW, L), L = OH*OW.
    Row c*KH*KW + i*KW + j of column r*OW + s holds x_pad[n, c, r*stride + i*dilation, s*stride + j*dilation]."""
    op = "unfold"
    x, unbatched = _batched(op, input, (3, 4), "(N, C, H, W)")
    _check_float(op, "input", x)
    kernel_size, dilation, padding, stride = _window_args(op, kernel_size, dilation, padding, stride)
    output_sizes(op, x.shape[2:], kernel_size, stride, padding, dilation)
    return _unbatch(Unfold.apply(x, kernel_size=kernel_size, dilation=dilation, padding=padding,
                                 stride=stride), unbatched)


def fold(input: Tensor, output_size: IntOrPair, kernel_size: IntOrPair, dilation: IntOrPair = 1,
         padding: IntOrPair = 0, stride: IntOrPair = 1) -> Tensor:
    """col2im, as ``torch.nn.functional.fold``: (N, C*KH*KW, L) -> (N, C, *output_size), each
    column entry added to the pixel that unfold would have copied it from."""
    op = "fold"
    cols, unbatched = _batched(op, input, (2, 3), "(N, C*KH*KW, L)")
    _check_float(op, "input", cols)
    output_size = pair(op, "output_size", output_size, 1)
    kernel_size, dilation, padding, stride = _window_args(op, kernel_size, dilation, padding, stride)
    kh, kw = kernel_size
    if cols.shape[1] % (kh * kw):
        raise ValueError(f"{op}: input has {cols.shape[1]} rows (shape {cols.shape}), not divisible by "
                         f"the kernel_size {kernel_size} product {kh * kw}")
    oh, ow = output_sizes(op, output_size, kernel_size, stride, padding, dilation)
    if cols.shape[2] != oh * ow:
        raise ValueError(f"{op}: input has {cols.shape[2]} columns (shape {cols.shape}) but output_size "
                         f"{output_size} with kernel_size {kernel_size}, dilation {dilation}, padding "
                         f"{padding}, stride {stride} gives {oh} x {ow} = {oh * ow} blocks")
    x_shape = (cols.shape[0], cols.shape[1] // (kh * kw)) + output_size
    return _unbatch(Fold.apply(cols, x_shape=x_shape, kernel_size=kernel_size, dilation=dilation,
                               padding=padding, stride=stride), unbatched)


def _window_args(op: str, kernel_size: Any, dilation: Any, padding: Any, stride: Any) -> tuple:
    """(kernel_size, dilation, padding, stride) as pairs, in unfold/fold's argument order."""
    return (pair(op, "kernel_size", kernel_size, 1), pair(op, "dilation", dilation, 1),
            pair(op, "padding", padding, 0), pair(op, "stride", stride, 1))
