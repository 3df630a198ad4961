"""2-D padding layers, as ``torch.nn``: the Module forms of ``F.pad`` on (N, C, H, W) or
(C, H, W) input. ``padding`` is an int (all four sides) or (left, right, top, bottom)."""
from __future__ import annotations

from typing import Any

from tinyvision import functional as F
from tinyvision.autograd.tensor import Tensor
from tinyvision.functional._util import ntuple
from tinyvision.nn.module import Module


class _Pad2d(Module):
    """``mode`` is F.pad's; the repr is torch's: ``ZeroPad2d((1, 1, 2, 0))``."""

    mode = "constant"

    def __init__(self, padding: int | tuple[int, int, int, int]) -> None:
        super().__init__()
        self.padding = ntuple(type(self).__name__, "padding", padding, 4)

    def forward(self, input: Tensor) -> Tensor:
        if input.ndim not in (3, 4):
            raise ValueError(f"{type(self).__name__}: input must be (N, C, H, W) or (C, H, W), got shape {input.shape}")
        return F.pad(input, self.padding, mode=self.mode, value=getattr(self, "value", 0.0))

    def extra_repr(self) -> str:
        return f"{self.padding}"


class ZeroPad2d(_Pad2d):
    """Pad with zeros."""


class ConstantPad2d(_Pad2d):
    """Pad with ``value``."""

    def __init__(self, padding: Any, value: float) -> None:
        super().__init__(padding)
        self.value = value

    def extra_repr(self) -> str:
        return f"padding={self.padding}, value={self.value}"


class ReflectionPad2d(_Pad2d):
    """Mirror the input at its borders without repeating the edge pixel (padding < size)."""

    mode = "reflect"


class ReplicationPad2d(_Pad2d):
    """Repeat the edge pixels."""

    mode = "replicate"
