"""Layer normalisation over the last axis of a (rows, C) matrix, in NumPy: the specification.

Every row r of x is standardised with its own mean and biased variance, then scaled and shifted
per column:

    mean_r = 1/C sum_c x_rc            var_r = 1/C sum_c (x_rc - mean_r)^2
    rstd_r = 1 / sqrt(var_r + eps)     x_hat = (x - mean) * rstd        y = x_hat * w + b

Backward, with g = dL/dy * w (per element) and the row means written <.>:

    dL/dx = rstd * (g - <g> - x_hat <g x_hat>)     (the chain rule through mean and var)
    dL/dw = sum over rows of dL/dy * x_hat          dL/db = sum over rows of dL/dy

``functional.layer_norm`` flattens any (*, *normalized_shape) input to (rows, C) first.
``weight``/``bias`` may be None (no affine).
"""
from __future__ import annotations

import numpy as np

__all__ = ["layer_norm_forward", "layer_norm_backward"]


def layer_norm_forward(x: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None,
                       eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x (R, C) -> (y (R, C), mean (R,), rstd (R,)); mean and rstd are kept for the backward."""
    mean = x.mean(axis=1)
    d = x - mean[:, None]
    rstd = 1 / np.sqrt((d * d).mean(axis=1) + eps)
    y = d * rstd[:, None]
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y.astype(x.dtype, copy=False), mean, rstd


def layer_norm_backward(grad: np.ndarray, x: np.ndarray, weight: np.ndarray | None, mean: np.ndarray,
                        rstd: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dL/dy (R, C) -> (dL/dx (R, C), dL/dw (C,), dL/db (C,)); the caller keeps what it needs."""
    x_hat = (x - mean[:, None]) * rstd[:, None]
    g = grad if weight is None else grad * weight
    dx = rstd[:, None] * (g - g.mean(axis=1, keepdims=True) - x_hat * (g * x_hat).mean(axis=1, keepdims=True))
    dw = (grad * x_hat).sum(axis=0)
    db = grad.sum(axis=0)
    return dx.astype(x.dtype, copy=False), dw.astype(x.dtype, copy=False), db.astype(x.dtype, copy=False)
