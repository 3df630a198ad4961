"""Activation layers: thin Modules over the elementwise ops in ``tinyvision.functional``.

``inplace=True`` is accepted for PyTorch compatibility (torchvision writes ``ReLU(inplace=True)``)
and ignored: every op here returns a new tensor. The visible difference: a forward hook on the
layer *before* an in-place ReLU sees post-ReLU values in PyTorch, pre-ReLU values here.
"""
from __future__ import annotations

import warnings

from tinyvision import functional as F
from tinyvision.autograd.tensor import Tensor
from tinyvision.nn.module import Module


class _Inplace(Module):
    """Base of the activations that take PyTorch's ``inplace`` flag (kept only for the repr)."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class ReLU(_Inplace):
    """max(x, 0)."""

    def forward(self, input: Tensor) -> Tensor:
        return F.relu(input)


class SiLU(_Inplace):
    """x * sigmoid(x)."""

    def forward(self, input: Tensor) -> Tensor:
        return F.silu(input)


class GELU(Module):
    """x * Phi(x) (``approximate='none'``, the erf form) or its tanh approximation."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, input: Tensor) -> Tensor:
        return F.gelu(input, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Tanh(Module):
    def forward(self, input: Tensor) -> Tensor:
        return F.tanh(input)


class Sigmoid(Module):
    def forward(self, input: Tensor) -> Tensor:
        return F.sigmoid(input)


class Softmax(Module):
    """exp(x) / sum(exp(x)) along ``dim``.

    ``dim=None`` keeps PyTorch's legacy choice (dim 0 for 0-, 1- and 3-d input, else 1) with a
    warning; pass ``dim`` explicitly.
    """

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:
        dim = self.dim
        if dim is None:
            warnings.warn("Softmax with dim=None picks the dim from the input's rank; pass dim explicitly",
                          stacklevel=2)
            dim = 0 if input.ndim in (0, 1, 3) else 1
        return F.softmax(input, dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
