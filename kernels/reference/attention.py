"""Scaled dot-product attention in plain NumPy: the readable specification of every rung.

    scores = scale * q @ k^T + bias          (..., L, S)   bias: additive mask, -inf = blocked
    probs  = softmax(scores) along S         (a row with every key blocked gives zeros)
    out    = (probs * dropout) @ v           (..., L, Ev)

Arguments shared by all rungs:

* ``q`` (..., L, E), ``k`` (..., S, E), ``v`` (..., S, Ev); batch dims broadcast.
* ``bias``: None or a float array that broadcasts to (..., L, S). Boolean masks are turned
  into 0 / -inf biases by ``tinyvision.functional.attention`` before they get here.
* ``scale``: the factor on q @ k^T (1 / sqrt(E) by default, chosen by the caller).
* ``is_causal``: query i sees keys j <= i only (PyTorch's top-left aligned lower triangle).
* ``dropout``: None or an array of the scores' shape holding keep / (1 - p) (0 or 1/(1-p)).

The backward returns ``(dq, dk, dv, dscores)``; ``dscores`` is also the gradient of an
additive float mask. The caller sums broadcast gradients back to each input's shape.
"""
from __future__ import annotations

import numpy as np

# The ladder: what every rung of this op defines with one signature and kernels/dispatch.py
# reaches by name (tests/test_kernels_ladder.py checks that the rungs agree).
__all__ = ["attention_forward", "attention_backward"]


def masked_softmax(scores: np.ndarray) -> np.ndarray:
    """softmax along the last axis, shifted by the row max (so exp never overflows).

    A row whose entries are all -inf (every key masked) has no defined softmax: we return
    zeros there, so that the output row is 0 and no gradient flows through it.
    """
    m = scores.max(axis=-1, keepdims=True)
    m = np.where(np.isneginf(m), 0.0, m)              # all -inf row: exp(-inf - 0) = 0, no NaN
    e = np.exp(scores - m)
    total = e.sum(axis=-1, keepdims=True)
    return e / np.where(total > 0, total, 1.0)


def causal_bias(L: int, S: int, dtype) -> np.ndarray:
    """0 where key j <= query i, -inf elsewhere: shape (L, S)."""
    return np.where(np.tril(np.ones((L, S), dtype=bool)), 0.0, -np.inf).astype(dtype)


def attention_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray, bias: np.ndarray | None, scale: float,
                      is_causal: bool, dropout: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(out, probs)``: out (..., L, Ev) and the softmax probabilities (..., L, S)
    (before dropout), which the backward needs."""
    scores = (q @ k.swapaxes(-1, -2)) * scale
    if bias is not None:
        scores = scores + bias.astype(scores.dtype)
    if is_causal:
        scores = scores + causal_bias(q.shape[-2], k.shape[-2], scores.dtype)
    probs = masked_softmax(scores).astype(q.dtype, copy=False)
    kept = probs if dropout is None else probs * dropout
    return kept @ v, probs


def attention_backward(grad: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray, probs: np.ndarray,
                       scale: float, dropout: np.ndarray | None) -> tuple[np.ndarray, ...]:
    """dL/dq, dL/dk, dL/dv and dL/dscores from dL/dout (grad, shape (..., L, Ev)).

    out = P' v with P' = P * D  =>  dv = P'^T g,  dP' = g v^T,  dP = dP' * D
    softmax backward (Jacobian diag(P) - P P^T, row by row):  dS = P * (dP - sum_j dP * P)
    scores = scale * q k^T  =>  dq = scale * dS k,  dk = scale * dS^T q
    """
    kept = probs if dropout is None else probs * dropout
    dv = kept.swapaxes(-1, -2) @ grad
    dprobs = grad @ v.swapaxes(-1, -2)
    if dropout is not None:
        dprobs = dprobs * dropout
    dscores = probs * (dprobs - (dprobs * probs).sum(axis=-1, keepdims=True))
    dq = (dscores @ k) * scale
    dk = (dscores.swapaxes(-1, -2) @ q) * scale
    return dq, dk, dv, dscores
