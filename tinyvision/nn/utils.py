"""Gradient utilities, as ``torch.nn.utils``: ``clip_grad_norm_``."""
from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from tinyvision.autograd import Tensor
from tinyvision.kernels import compat


def _vector_norm(x: Any, norm_type: float) -> Any:
    """||x||_p of all entries of the array x, as a 0-d array: (sum |x_i|^p)^(1/p); max |x_i| for p = inf."""
    xp = compat.array_module(x)
    a = xp.abs(x.ravel())
    if norm_type == math.inf:
        return a.max()
    if norm_type == 2.0:
        return xp.sqrt(xp.sum(a * a))
    return xp.sum(a ** norm_type) ** (1.0 / norm_type)


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float, norm_type: float = 2.0,
                     error_if_nonfinite: bool = False) -> Tensor:
    """Scale all gradients together so that their joint norm is at most ``max_norm``.

    The joint norm is that of all gradients concatenated into one vector (computed as torch
    does, as the norm of the per-tensor norms). Each ``p.grad`` is multiplied in place by
    ``min(1, max_norm / (total_norm + 1e-6))``; the 1e-6 keeps the division finite for
    zero gradients. Parameters without a gradient are skipped. Returns the total norm before
    clipping, a 0-d Tensor. ``norm_type``: p > 0, or ``float('inf')`` for max |g|.
    """
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    norm_type = float(norm_type)
    if not norm_type > 0:
        raise ValueError(f"norm_type must be > 0 (or inf), got {norm_type!r}")
    grads = [p.grad.data for p in params if p.grad is not None]
    if not grads:
        return Tensor(np.zeros((), dtype=np.float32))  # torch's tensor(0.)
    xp = compat.array_module(grads[0])
    total = _vector_norm(xp.stack([_vector_norm(g, norm_type) for g in grads]), norm_type)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(
            f"the total norm of order {norm_type} of the gradients is {float(total)}, so they "
            "cannot be clipped; pass error_if_nonfinite=False to scale by it anyway"
        )
    # Multiplying also when the coefficient is 1 avoids a device -> host sync on the GPU.
    coef = xp.minimum(max_norm / (total + 1e-6), 1.0)
    for g in grads:
        g *= coef
    return Tensor(total)
