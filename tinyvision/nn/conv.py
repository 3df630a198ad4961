"""``Conv1d``, ``Conv2d``, ``Conv3d``, ``ConvTranspose2d``, ``Unfold`` and ``Fold`` (the compute is
in ``tinyvision.functional.conv``).

``padding_mode`` is PyTorch's: 'zeros' pads inside the convolution; 'reflect', 'replicate' and
'circular' pad the input first with ``F.pad`` (whose backward folds the padded border's
gradient back onto the pixels it copied), then convolve without padding. ConvTranspose2d
takes 'zeros' only, as in PyTorch.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from tinyvision import functional as F
from tinyvision.autograd.tensor import Tensor
from tinyvision.functional._util import ntuple
from tinyvision.functional.conv import padding_widths
from tinyvision.kernels.reference.conv import conv_transpose_output_size
from tinyvision.nn.linear import reset_weight_and_bias
from tinyvision.nn.module import Module, empty_parameter

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class _ConvNd(Module):
    """What Conv2d and ConvTranspose2d share: argument checks, parameters, init and repr.

    ``weight_shape`` differs: (out, in/groups, kH, kW) for Conv2d but (in, out/groups, kH, kW)
    for ConvTranspose2d (the transposed conv is the gradient of a conv from out to in).
    """

    _n = 2  # spatial dims: 1 for Conv1d, 3 for Conv3d

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any,
                 padding: Any, dilation: Any, groups: int, bias: bool, padding_mode: str,
                 transposed: bool, output_padding: Any, device: str | None, dtype: Any) -> None:
        super().__init__()
        name, n = type(self).__name__, self._n

        def _ntuple(op: str, arg: str, value: Any) -> tuple[int, ...]:  # n ints, one per spatial dim
            return ntuple(op, arg, value, n)
        if groups <= 0 or in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: in_channels ({in_channels}) and out_channels ({out_channels}) "
                             f"must both be divisible by groups ({groups})")
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"{name}: padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
        if transposed and padding_mode != "zeros":
            raise ValueError(f"{name}: only padding_mode='zeros' is supported, got {padding_mode!r}")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{name}: padding must be 'same', 'valid', an int or a pair, got {padding!r}")
            if padding == "same" and _ntuple(name, "stride", stride) != (1,) * n:
                raise ValueError(f"{name}: padding='same' needs stride 1, got stride={stride}")
        else:
            padding = _ntuple(name, "padding", padding)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride = _ntuple(name, "kernel_size", kernel_size), _ntuple(name, "stride", stride)
        self.padding, self.dilation, self.padding_mode = padding, _ntuple(name, "dilation", dilation), padding_mode
        self.transposed, self.output_padding = transposed, _ntuple(name, "output_padding", output_padding)
        channels = (in_channels, out_channels // groups) if transposed else (out_channels, in_channels // groups)
        self.weight = empty_parameter(channels + self.kernel_size, dtype, device)
        self.bias = empty_parameter((out_channels,), dtype, device) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_weight_and_bias(self.weight, self.bias)

    def extra_repr(self) -> str:
        zeros, ones = (0,) * self._n, (1,) * self._n
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != zeros:
            s += f", padding={self.padding}"
        if self.dilation != ones:
            s += f", dilation={self.dilation}"
        if self.output_padding != zeros:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv2d(_ConvNd):
    """2-D cross-correlation: (N, C_in, H, W) -> (N, C_out, H_out, W_out) with
    H_out = floor((H + 2 p - d (k - 1) - 1) / s) + 1.

    ``weight`` (C_out, C_in/groups, kH, kW), ``bias`` (C_out,); ``padding`` may be an int, a
    pair, 'valid' or 'same' (stride 1). Init: PyTorch's kaiming_uniform_(a=sqrt(5)).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
                 stride: int | Sequence[int] = 1, padding: int | Sequence[int] | str = 0,
                 dilation: int | Sequence[int] = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: str | None = None, dtype: Any = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                         bias, padding_mode, False, 0, device, dtype)

    def forward(self, input: Tensor) -> Tensor:
        conv = (F.conv1d, F.conv2d, F.conv3d)[self._n - 1]
        if self.padding_mode == "zeros":
            return conv(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        widths = padding_widths(self.padding, self.kernel_size, self.dilation)
        padded = F.pad(input, widths, mode=self.padding_mode)
        return conv(padded, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class Conv1d(Conv2d):
    """1-D cross-correlation: (N, C_in, L) -> (N, C_out, L_out); ``weight`` (C_out, C_in/groups, k).
    Computed as a conv2d on a height-1 image (see ``F.conv1d``)."""

    _n = 1  # Conv2d's arguments, each a 1-tuple


class Conv3d(Conv2d):
    """3-D cross-correlation: (N, C_in, D, H, W) -> (N, C_out, D_out, H_out, W_out); ``weight``
    (C_out, C_in/groups, kD, kH, kW). Computed as KD conv2d's (see ``F.conv3d``)."""

    _n = 3  # Conv2d's arguments, each a 3-tuple


class ConvTranspose2d(_ConvNd):
    """The adjoint of Conv2d ("deconvolution"): (N, C_in, H, W) -> (N, C_out, H_out, W_out) with
    H_out = (H - 1) s - 2 p + d (k - 1) + output_padding + 1.

    ``weight`` (C_in, C_out/groups, kH, kW), ``bias`` (C_out,). ``forward(input, output_size)``
    may ask for one of the s possible sizes instead of giving ``output_padding``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
                 stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
                 output_padding: int | Sequence[int] = 0, groups: int = 1, bias: bool = True,
                 dilation: int | Sequence[int] = 1, padding_mode: str = "zeros",
                 device: str | None = None, dtype: Any = None) -> None:
        if isinstance(padding, str):
            raise ValueError(f"ConvTranspose2d: padding must be an int or a pair, got {padding!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                         bias, padding_mode, True, output_padding, device, dtype)

    def _output_padding(self, input: Tensor, output_size: Sequence[int] | None) -> tuple[int, int]:
        """The output_padding that yields ``output_size`` (its last two entries are H, W)."""
        if output_size is None:
            return self.output_padding
        want = tuple(output_size)[-2:]
        extra = []
        for i, (n, target) in enumerate(zip(input.shape[2:], want)):
            smallest = conv_transpose_output_size(n, self.kernel_size[i], self.stride[i], self.padding[i],
                                                  self.dilation[i])
            if not smallest <= target < smallest + self.stride[i]:
                raise ValueError(f"ConvTranspose2d: output_size {tuple(output_size)} is not reachable from "
                                 f"input of shape {input.shape}: dim {i} must be in "
                                 f"[{smallest}, {smallest + self.stride[i] - 1}]")
            extra.append(target - smallest)
        return extra[0], extra[1]

    def forward(self, input: Tensor, output_size: Sequence[int] | None = None) -> Tensor:
        return F.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding,
                                  self._output_padding(input, output_size), self.groups, self.dilation)


class Unfold(Module):
    """im2col: (N, C, H, W) -> (N, C * prod(kernel_size), L) (see ``F.unfold``)."""

    def __init__(self, kernel_size: Any, dilation: Any = 1, padding: Any = 0, stride: Any = 1) -> None:
        super().__init__()
        self.kernel_size, self.dilation, self.padding, self.stride = kernel_size, dilation, padding, stride

    def forward(self, input: Tensor) -> Tensor:
        return F.unfold(input, self.kernel_size, self.dilation, self.padding, self.stride)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, dilation={self.dilation}, padding={self.padding}, "
                f"stride={self.stride}")


class Fold(Module):
    """col2im: (N, C * prod(kernel_size), L) -> (N, C, *output_size), overlaps summed (``F.fold``)."""

    def __init__(self, output_size: Any, kernel_size: Any, dilation: Any = 1, padding: Any = 0,
                 stride: Any = 1) -> None:
        super().__init__()
        self.output_size, self.kernel_size = output_size, kernel_size
        self.dilation, self.padding, self.stride = dilation, padding, stride

    def forward(self, input: Tensor) -> Tensor:
        return F.fold(input, self.output_size, self.kernel_size, self.dilation, self.padding, self.stride)

    def extra_repr(self) -> str:
        return (f"output_size={self.output_size}, kernel_size={self.kernel_size}, dilation={self.dilation}, "
                f"padding={self.padding}, stride={self.stride}")
