"""The exact GELU and the error function it needs, in NumPy: the specification.

    GELU(x) = x * Phi(x),  Phi(x) = (1 + erf(x / sqrt 2)) / 2      (the normal CDF)
    dGELU/dx = Phi(x) + x * phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)   (the normal density)

``erf`` here is SciPy's, correct to the last bit in float64. It is also the slow part of a
ViT's training step: scipy.special.erf evaluates each element with scalar code (about 20 ns
an element on the reference machine, some 40x ``np.tanh``), and GELU calls it on every MLP
activation, forward and backward. The Numba rung (cpu/activation.py) replaces it for float32
by a rational function that SIMD units evaluate in well under a nanosecond per element.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.special

# The ladder: what every rung of this op defines with one signature and kernels/dispatch.py
# reaches by name (tests/test_kernels_ladder.py checks that the rungs agree).
__all__ = ["gelu_forward", "gelu_backward"]

SQRT_HALF = 1 / math.sqrt(2)
INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)

# erf(x) ~ x * P(x^2) / Q(x^2) on [-4, 4], and +-1 beyond (|erf(4)| = 1 - 1.5e-8, below float32's
# resolution at 1). The coefficients are the float32 erf of XLA/Eigen (a minimax fit); evaluated in
# float64 the result is within 1e-7 of the true erf (about one float32 ulp near 1), as torch's own.
ERF_P = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
         -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02)
ERF_Q = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
         -1.42647390514189e-02)


def erf_rational(x: np.ndarray) -> np.ndarray:
    """The float32 rung's formula written out in NumPy (Horner's rule in x^2), for tests and
    for reading: computed in float64, returned in ``x``'s dtype (float32)."""
    v = np.clip(x.astype(np.float64), -4.0, 4.0)
    v2 = v * v
    p = np.full_like(v2, ERF_P[0])
    for c in ERF_P[1:]:
        p = p * v2 + c
    q = np.full_like(v2, ERF_Q[0])
    for c in ERF_Q[1:]:
        q = q * v2 + c
    return (v * p / q).astype(x.dtype)


def erf(x: np.ndarray) -> np.ndarray:
    """The error function, elementwise, in ``x``'s dtype."""
    return scipy.special.erf(x).astype(x.dtype, copy=False)


def gelu_forward(x: np.ndarray) -> np.ndarray:
    """x * Phi(x), elementwise."""
    return 0.5 * x * (1 + erf(x * x.dtype.type(SQRT_HALF)))


def gelu_backward(x: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """grad * (Phi(x) + x phi(x)): the chain rule through GELU."""
    cdf = 0.5 * (1 + erf(x * x.dtype.type(SQRT_HALF)))
    pdf = np.exp(-0.5 * x * x) * x.dtype.type(INV_SQRT_2PI)
    return grad * (cdf + x * pdf)
