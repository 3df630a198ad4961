"""Math for Numba kernels that LLVM can vectorise.

Without Intel's SVML library, Numba turns ``np.exp`` / ``math.exp`` into one scalar libm call
per element (about 20 ns each here): in a softmax or a GELU backward over millions of values
that call is the whole cost. ``exp_nonpositive`` gives float32 kernels Cephes' ``expf`` instead:
range reduction to e^r with |r| <= ln2/2, a degree-7 polynomial, and 2^n built from its bits,
all plain arithmetic that fills 8 SIMD lanes (within 1 ulp of the exact value). float64 keeps
``np.exp``: its kernels serve gradient checks, where exactness matters more than speed.
"""
from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import intrinsic, overload


@intrinsic
def _float32_from_bits(typingctx, bits):
    """Reinterpret an int32's bits as a float32 (no conversion): 2**n is the bits (n + 127) << 23."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float32))
    return types.float32(types.int32), codegen


_F = np.float32  # float32 constants keep the whole computation in float32 (8 lanes per ymm)
_LOG2E, _LN2_HI, _LN2_LO = _F(1.44269504), _F(0.693359375), _F(-2.12194440e-4)
_P = tuple(_F(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
                           1.6666665459e-1, 5.0000001201e-1))
_LOWEST, _HALF, _ONE, _ZERO = _F(-87.0), _F(0.5), _F(1.0), _F(0.0)


@njit(inline="always")
def _expf(x):
    """e^x for float32 x <= 0 (Cephes expf). e^x = 2^n e^r with n = round(x / ln 2) and
    r = x - n ln 2 in [-ln2/2, ln2/2] (ln 2 in two parts, so r is exact); e^r by its Taylor-like
    polynomial. Below -87, e^x is subnormal: 0. NaN stays NaN."""
    xc = max(x, _LOWEST)
    n = np.floor(xc * _LOG2E + _HALF)
    r = xc - n * _LN2_HI - n * _LN2_LO
    p = ((((_P[0] * r + _P[1]) * r + _P[2]) * r + _P[3]) * r + _P[4]) * r + _P[5]
    e = (p * r * r + r + _ONE) * _float32_from_bits((np.int32(n) + np.int32(127)) << np.int32(23))
    return e if x >= _LOWEST else (x if x != x else _ZERO)


def exp_nonpositive(x):
    """exp of a number <= 0 inside Numba kernels: ``_expf`` for float32, ``np.exp`` otherwise."""
    return np.exp(x)


@overload(exp_nonpositive)
def _exp_by_type(x):
    return (lambda x: _expf(x)) if x == types.float32 else (lambda x: np.exp(x))
