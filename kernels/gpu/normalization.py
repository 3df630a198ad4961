"""Layer normalisation on the GPU: the same functions and signatures as
``reference/normalization.py``, written with CuPy's array operations (each a fused reduction
or elementwise kernel on the device). A hand-written one-block-per-row kernel would save the
temporaries, as the Numba rung does on the CPU; it has not been needed yet."""
from __future__ import annotations

from typing import Any

__all__ = ["layer_norm_forward", "layer_norm_backward"]


def layer_norm_forward(x: Any, weight: Any, bias: Any, eps: float) -> tuple[Any, Any, Any]:
    """x (R, C) -> (y (R, C), mean (R,), rstd (R,)); mean and rstd are kept for the backward."""
    mean = x.mean(axis=1, dtype="float64")
    d = x - mean[:, None].astype(x.dtype)
    rstd = 1 / (((d * d).mean(axis=1, dtype="float64") + eps) ** 0.5)
    y = d * rstd[:, None].astype(x.dtype)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y, mean, rstd


def layer_norm_backward(grad: Any, x: Any, weight: Any, mean: Any, rstd: Any) -> tuple[Any, Any, Any]:
    """dL/dy (R, C) -> (dL/dx (R, C), dL/dw (C,), dL/db (C,)); the caller keeps what it needs."""
    rs = rstd[:, None].astype(x.dtype)
    x_hat = (x - mean[:, None].astype(x.dtype)) * rs
    g = grad if weight is None else grad * weight
    dx = rs * (g - g.mean(axis=1, keepdims=True) - x_hat * (g * x_hat).mean(axis=1, keepdims=True))
    return dx, (grad * x_hat).sum(axis=0), grad.sum(axis=0)
