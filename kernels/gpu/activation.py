"""GELU and erf on the GPU with CuPy: the same functions and signatures as
``reference/activation.py``. CUDA's ``erf`` is exact to a few ulps in both precisions, so no
rational stand-in is needed here; each function is one fused elementwise kernel."""
from __future__ import annotations

import functools
from typing import Any

from tinyvision.kernels.compat import cupy
from tinyvision.kernels.reference.activation import INV_SQRT_2PI, SQRT_HALF

# The ladder: what every rung of this op defines with one signature and kernels/dispatch.py
# reaches by name (tests/test_kernels_ladder.py checks that the rungs agree).
__all__ = ["gelu_forward", "gelu_backward"]


@functools.lru_cache(maxsize=None)
def _kernels() -> tuple[Any, Any, Any]:
    erf = cupy.ElementwiseKernel("T x", "T y", "y = erf(x)", "tv_erf")
    gelu = cupy.ElementwiseKernel("T x", "T y", f"y = (T)0.5 * x * ((T)1 + erf(x * (T){SQRT_HALF!r}))", "tv_gelu")
    grad = cupy.ElementwiseKernel(
        "T x, T g", "T y",
        f"T cdf = (T)0.5 * ((T)1 + erf(x * (T){SQRT_HALF!r}));"
        f"y = g * (cdf + x * exp((T)-0.5 * x * x) * (T){INV_SQRT_2PI!r})", "tv_gelu_grad")
    return erf, gelu, grad


def erf(x: Any) -> Any:
    """The error function, elementwise, in ``x``'s dtype."""
    return _kernels()[0](x)


def gelu_forward(x: Any) -> Any:
    """x * Phi(x), elementwise."""
    return _kernels()[1](x)


def gelu_backward(x: Any, grad: Any) -> Any:
    """grad * (Phi(x) + x phi(x)); ``grad`` has ``x``'s shape."""
    return _kernels()[2](x, grad.astype(x.dtype, copy=False))
