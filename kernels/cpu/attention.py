"""Scaled dot-product attention on the CPU: BLAS batched matmuls + fused Numba softmax.

Same functions and signatures as ``reference/attention.py``. The matmuls (q k^T, P v and
the four in the backward) are ``np.matmul`` (OpenBLAS sgemm per batch). What Numba buys is
the softmax: the reference makes about six full passes over the (..., L, S) scores
(max, subtract, exp, sum, divide, plus the -inf handling); the fused kernel reads each row
while it is in L1, once for the max and once for exp-and-sum, then scales it. Its backward
fuses dS = P * (dP - sum(dP * P)) the same way, in place. Causal masking costs nothing: row i
only visits keys j <= i and zero-fills the rest.

Without Intel's SVML library, Numba turns ``np.exp`` into one libm call per element, which
does not vectorise: 3.7 M of them were the largest cost of the softmax. For float32 the kernel
uses the vectorisable exp of ``cpu/fastmath.py`` (~5x faster measured on 3.7 M values);
float64 keeps ``np.exp``.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from tinyvision.kernels.cpu import threading as _threading  # noqa: F401  (one Numba/BLAS thread policy)
from tinyvision.kernels.cpu.fastmath import exp_nonpositive as _exp

# The ladder: what every rung of this op defines with one signature and kernels/dispatch.py
# reaches by name (tests/test_kernels_ladder.py checks that the rungs agree).
__all__ = ["attention_forward", "attention_backward"]


# --------------------------------------------------------------------------- fused softmax

@njit(parallel=True, cache=True)
def _softmax_rows(s, scale, L, causal):
    """In place: each row r of s (R, S) becomes softmax(scale * row) over its visible keys.

    Visible keys: all S, or j <= r % L when causal (row r is query r % L). A row with no
    finite score (every key masked by -inf) becomes all zeros.
    """
    R, S = s.shape
    for r in prange(R):
        row = s[r]
        n = min(S, r % L + 1) if causal else S
        m = row[0] * scale  # n >= 1 always (a causal row sees at least its own key)
        for j in range(1, n):
            m = max(m, row[j] * scale)
        if m == -np.inf:
            row[:] = 0
            continue
        total = 0.0
        for j in range(n):
            e = _exp(row[j] * scale - m)  # exponent <= 0: no overflow
            row[j] = e
            total += e
        inv = 1.0 / total
        for j in range(n):
            row[j] *= inv
        row[n:] = 0


@njit(parallel=True, cache=True)
def _softmax_backward_rows(p, dp):
    """In place: dp <- p * (dp - sum(dp * p)), row by row (the softmax Jacobian-vector product)."""
    for r in prange(p.shape[0]):
        dot = 0.0
        for j in range(p.shape[1]):
            dot += dp[r, j] * p[r, j]
        for j in range(p.shape[1]):
            dp[r, j] = p[r, j] * (dp[r, j] - dot)


def _rows(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1, a.shape[-1])


def attention_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray, bias: np.ndarray | None, scale: float,
                      is_causal: bool, dropout: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """See reference.attention.attention_forward."""
    scores = np.matmul(q, k.swapaxes(-1, -2))
    if bias is not None:  # the bias is added after scaling, so scale first and softmax with 1
        scores = np.ascontiguousarray(scores * scores.dtype.type(scale) + bias.astype(scores.dtype))
        scale = 1.0
    _softmax_rows(_rows(scores), scores.dtype.type(scale), q.shape[-2], is_causal)
    kept = scores if dropout is None else scores * dropout
    return np.matmul(kept, v), scores


def attention_backward(grad: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray, probs: np.ndarray,
                       scale: float, dropout: np.ndarray | None) -> tuple[np.ndarray, ...]:
    """See reference.attention.attention_backward."""
    kept = probs if dropout is None else probs * dropout
    dv = np.matmul(kept.swapaxes(-1, -2), grad)
    dscores = np.matmul(grad, v.swapaxes(-1, -2))
    if dropout is not None:
        dscores *= dropout
    _softmax_backward_rows(_rows(probs), _rows(dscores))
    c = dscores.dtype.type(scale)
    dq = np.matmul(dscores, k)
    dq *= c
    dk = np.matmul(dscores.swapaxes(-1, -2), q)
    dk *= c
    return dq, dk, dv, dscores
