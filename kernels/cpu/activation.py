"""GELU and erf on the CPU with Numba: the same functions and signatures as
``reference/activation.py``.

* float32: the rational erf of ``reference.activation.ERF_P / ERF_Q``, evaluated in float64 in
  one fused, SIMD-vectorised, parallel loop: no temporaries, no scalar libm calls. Within 1e-7
  of the exact erf (torch's float32 erf is within 6e-8).
* float64: ``math.erf`` (libm, exact to the last bit) in a parallel loop, so gradient checks
  see the same function as the reference.
GELU's forward and backward each make one pass over memory, instead of the five or six array
temporaries of the NumPy expressions; the backward's exp(-x^2/2) is fastmath.py's vectorisable
float32 exp (``math.exp`` in a Numba loop is a scalar libm call, about 20 ns an element).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from tinyvision.kernels.cpu import threading as _threading  # noqa: F401  (one Numba/BLAS thread policy)
from tinyvision.kernels.cpu.fastmath import exp_nonpositive
from tinyvision.kernels.reference import activation as reference
from tinyvision.kernels.reference.activation import ERF_P, ERF_Q, INV_SQRT_2PI, SQRT_HALF

# The ladder: what every rung of this op defines with one signature and kernels/dispatch.py
# reaches by name (tests/test_kernels_ladder.py checks that the rungs agree).
__all__ = ["gelu_forward", "gelu_backward"]

P0, P1, P2, P3, P4, P5, P6 = ERF_P
Q0, Q1, Q2, Q3, Q4 = ERF_Q


@njit(inline="always", fastmath=True)
def _erf32(x: float) -> float:
    """The rational erf on [-4, 4] (clamped outside), Horner in x^2, in float64, then rounded
    to float32 as torch's float32 erf is: past |x| ~ 3.9 it is exactly +-1, so 1 + erf(x)
    cancels to exactly 0 for very negative x (GELU(-1000) = -0, not 1000 * 1e-8)."""
    v = min(max(x, -4.0), 4.0)
    v2 = v * v
    p = (((((P0 * v2 + P1) * v2 + P2) * v2 + P3) * v2 + P4) * v2 + P5) * v2 + P6
    q = (((Q0 * v2 + Q1) * v2 + Q2) * v2 + Q3) * v2 + Q4
    return np.float64(np.float32(v * p / q))


@njit(parallel=True, fastmath=True, cache=True)
def _erf_f32(x, out):
    for i in prange(x.size):
        out[i] = _erf32(np.float64(x[i]))


@njit(parallel=True, cache=True)
def _erf_f64(x, out):
    for i in prange(x.size):
        out[i] = math.erf(x[i])


@njit(parallel=True, fastmath=True, cache=True)
def _gelu_f32(x, out):
    for i in prange(x.size):
        v = np.float64(x[i])
        out[i] = 0.5 * v * (1.0 + _erf32(v * SQRT_HALF))


@njit(parallel=True, cache=True)
def _gelu_f64(x, out):
    for i in prange(x.size):
        out[i] = 0.5 * x[i] * (1.0 + math.erf(x[i] * SQRT_HALF))


@njit(parallel=True, fastmath=True, cache=True)
def _gelu_grad_f32(x, grad, out):
    for i in prange(x.size):
        v = np.float64(x[i])
        cdf = 0.5 * (1.0 + _erf32(v * SQRT_HALF))
        gauss = exp_nonpositive(np.float32(-0.5) * x[i] * x[i])  # float32 expf: vectorises
        out[i] = grad[i] * (cdf + v * gauss * INV_SQRT_2PI)


@njit(parallel=True, cache=True)
def _gelu_grad_f64(x, grad, out):
    for i in prange(x.size):
        v = x[i]
        cdf = 0.5 * (1.0 + math.erf(v * SQRT_HALF))
        out[i] = grad[i] * (cdf + v * math.exp(-0.5 * v * v) * INV_SQRT_2PI)


def _flat(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).reshape(-1)


def _run(f32, f64, like: np.ndarray, *arrays: np.ndarray) -> np.ndarray:
    out = np.empty(like.shape, like.dtype)
    (f32 if like.dtype == np.float32 else f64)(*(_flat(a) for a in arrays), out.reshape(-1))
    return out


def _fast(x: np.ndarray) -> bool:
    """float32 and float64 have kernels here; other dtypes (float16) take the reference."""
    return x.dtype == np.float32 or x.dtype == np.float64


def erf(x: np.ndarray) -> np.ndarray:
    """The error function, elementwise, in ``x``'s dtype."""
    return _run(_erf_f32, _erf_f64, x, x) if _fast(x) else reference.erf(x)


def gelu_forward(x: np.ndarray) -> np.ndarray:
    """x * Phi(x), elementwise."""
    return _run(_gelu_f32, _gelu_f64, x, x) if _fast(x) else reference.gelu_forward(x)


def gelu_backward(x: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """grad * (Phi(x) + x phi(x)); ``grad`` has ``x``'s shape."""
    if not _fast(x):
        return reference.gelu_backward(x, grad)
    return _run(_gelu_grad_f32, _gelu_grad_f64, x, x, np.asarray(grad, dtype=x.dtype))
