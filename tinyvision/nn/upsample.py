"""``Upsample``: the Module form of ``F.interpolate``."""
from __future__ import annotations

from typing import Sequence

from tinyvision import functional as F
from tinyvision.autograd.tensor import Tensor
from tinyvision.nn.module import Module


class Upsample(Module):
    """Resize (N, C, *spatial) maps (1, 2 or 3 spatial dims) to ``size`` or by ``scale_factor``
    with ``mode`` 'nearest' (floor rule), 'nearest-exact', 'linear' / 'bilinear' /
    'trilinear', 'bicubic' (``align_corners`` as in PyTorch) or 'area': see
    ``F.interpolate``. No parameters."""

    def __init__(self, size: int | Sequence[int] | None = None,
                 scale_factor: float | Sequence[float] | None = None, mode: str = "nearest",
                 align_corners: bool | None = None, recompute_scale_factor: bool | None = None) -> None:
        super().__init__()
        if isinstance(scale_factor, (tuple, list)):
            scale_factor = tuple(float(f) for f in scale_factor)
        elif scale_factor is not None:
            scale_factor = float(scale_factor)
        self.size, self.scale_factor, self.mode = size, scale_factor, mode
        self.align_corners, self.recompute_scale_factor = align_corners, recompute_scale_factor

    def forward(self, input: Tensor) -> Tensor:
        return F.interpolate(input, self.size, self.scale_factor, self.mode, self.align_corners,
                             recompute_scale_factor=self.recompute_scale_factor)

    def extra_repr(self) -> str:
        what = f"scale_factor={self.scale_factor!r}" if self.scale_factor is not None else f"size={self.size!r}"
        return f"{what}, mode={self.mode!r}"
