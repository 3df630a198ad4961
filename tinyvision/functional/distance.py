"""Distances between rows of two tensors: ``cosine_similarity`` and ``pairwise_distance``, as
torch (the building blocks of metric-learning losses and of contrastive self-supervision).

Both are compositions of differentiable ops, so their gradients come from those ops:

    cosine_similarity  sum(x1 / max(|x1|, eps) * x2 / max(|x2|, eps))  along ``dim``
    pairwise_distance  | x1 - x2 + eps |_p                           along the last dim

(the eps keeps the norm's gradient finite when two rows coincide).
"""
from __future__ import annotations

import numpy as np

from tinyvision.autograd.tensor import Tensor
from tinyvision.functional import elementwise as E
from tinyvision.functional import reduction as R
from tinyvision.functional._util import check_floating, normalize_dim


def _broadcast(op: str, x1: Tensor, x2: Tensor) -> tuple[int, ...]:
    check_floating(op, "x1", x1)
    check_floating(op, "x2", x2)
    try:
        return tuple(np.broadcast_shapes(x1.shape, x2.shape))
    except ValueError:
        raise ValueError(f"{op}: x1 of shape {x1.shape} and x2 of shape {x2.shape} do not broadcast") from None


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """cos(angle) between x1 and x2 along ``dim`` (they broadcast), each norm clamped to >= eps
    (torch's rule: each vector is normalised on its own, so a zero vector gives 0, not nan)."""
    shape = _broadcast("cosine_similarity", x1, x2)
    axis = normalize_dim(dim, len(shape), "cosine_similarity")
    if len(shape) == 0:
        raise ValueError("cosine_similarity: inputs must have at least one dim, got 0-d tensors")
    x1 = x1.expand(shape) if x1.shape != shape else x1
    x2 = x2.expand(shape) if x2.shape != shape else x2
    n1 = E.clamp(R.norm(x1, 2, axis, keepdim=True), min=eps)
    n2 = E.clamp(R.norm(x2, 2, axis, keepdim=True), min=eps)
    return ((x1 / n1) * (x2 / n2)).sum(axis)


def pairwise_distance(x1: Tensor, x2: Tensor, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> Tensor:
    """The p-norm of x1 - x2 + eps over the last dim: (N, D), (N, D) -> (N,) (or (D,) -> ())."""
    shape = _broadcast("pairwise_distance", x1, x2)
    if len(shape) == 0:
        raise ValueError("pairwise_distance: inputs must have at least one dim, got 0-d tensors")
    return R.norm(x1 - x2 + eps, p, -1, keepdim)
