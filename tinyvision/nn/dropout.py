"""``Dropout`` (each element) and ``Dropout1d/2d/3d`` (whole channels): inverted dropout while
training, identity in eval mode. The math is in ``tinyvision.functional.dropout``."""
from __future__ import annotations

from tinyvision import functional as F
from tinyvision.autograd.tensor import Tensor
from tinyvision.nn.module import Module


class _DropoutNd(Module):
    """``p`` and PyTorch's ``inplace`` flag (accepted and ignored: a new tensor is returned)."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{type(self).__name__}: p must be in [0, 1], got {p}")
        self.p, self.inplace = p, inplace

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    """Zero each element with probability ``p`` and scale the kept ones by 1/(1-p) in
    training mode; identity after ``eval()``."""

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout(input, self.p, self.training)


class Dropout1d(_DropoutNd):
    """Zero whole channels of (N, C, L) or (C, L) input."""

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout1d(input, self.p, self.training)


class Dropout2d(_DropoutNd):
    """Zero whole channels (feature maps) of (N, C, H, W) input (3-D input: see F.dropout2d)."""

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout2d(input, self.p, self.training)


class Dropout3d(_DropoutNd):
    """Zero whole channels of (N, C, D, H, W) or (C, D, H, W) input."""

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout3d(input, self.p, self.training)
