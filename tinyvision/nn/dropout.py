"""``Dropout``: inverted dropout while training, identity in eval mode."""
from __future__ import annotations

from tinyvision import functional as F
from tinyvision.autograd.tensor import Tensor
from tinyvision.nn.module import Module


class Dropout(Module):
    """Zero each element with probability ``p`` and scale the kept ones by 1/(1-p) in
    training mode; identity after ``eval()``. ``inplace`` is accepted and ignored."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout(input, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
