"""Elementwise ops: arithmetic, math functions, comparisons (activations: ``activation.py``).

Each class holds one op: ``forward`` on raw arrays, then ``backward`` with its local
derivative. Broadcasting needs no code here: the engine sums every gradient back to its
input's shape (``autograd.function.sum_to``).
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from tinyvision.autograd.function import Context, Function
from tinyvision.autograd.tensor import Tensor
from tinyvision.functional._util import check_broadcast
from tinyvision.kernels import compat
from tinyvision.kernels.compat import array_module, is_array


def _xp(*arrays: Any):
    return array_module(*arrays)


# ------------------------------------------------------------------ arithmetic
class Add(Function):
    @staticmethod
    def forward(ctx: Context, a, b):
        check_broadcast("add", a, b)
        return a + b

    @staticmethod
    def backward(ctx: Context, grad):  # d(a+b)/da = d(a+b)/db = 1
        return grad, grad


class Sub(Function):
    @staticmethod
    def forward(ctx: Context, a, b):
        check_broadcast("sub", a, b)
        return a - b

    @staticmethod
    def backward(ctx: Context, grad):
        return grad, -grad


class Mul(Function):
    @staticmethod
    def forward(ctx: Context, a, b):
        check_broadcast("mul", a, b)
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx: Context, grad):  # d(ab)/da = b, d(ab)/db = a
        a, b = ctx.saved_tensors
        return (grad * b if ctx.needs_input_grad[0] else None,
                grad * a if ctx.needs_input_grad[1] else None)


class Div(Function):
    @staticmethod
    def forward(ctx: Context, a, b):
        check_broadcast("div", a, b)
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx: Context, grad):  # d(a/b)/da = 1/b, d(a/b)/db = -a/b^2
        a, b = ctx.saved_tensors
        ga = grad / b if ctx.needs_input_grad[0] else None
        gb = -grad * a / (b * b) if ctx.needs_input_grad[1] else None
        return ga, gb


class Pow(Function):
    @staticmethod
    def forward(ctx: Context, a, b):
        check_broadcast("pow", a, b)
        y = a ** b
        ctx.save_for_backward(a, b, y)
        return y

    @staticmethod
    def backward(ctx: Context, grad):  # d(a^b)/da = b a^(b-1), d(a^b)/db = a^b ln a
        a, b, y = ctx.saved_tensors
        xp = _xp(grad)
        a_, b_ = xp.asarray(a), xp.asarray(b)  # either may be a Python number (x ** 2, 2 ** x)
        ga = gb = None
        if ctx.needs_input_grad[0]:  # PyTorch's convention: 0 where b == 0, even at a == 0
            ga = xp.where(b_ == 0, 0, grad * b * a ** (b - 1))
        if ctx.needs_input_grad[1]:  # PyTorch's convention: the term is 0 where a == 0
            gb = grad * y * xp.log(xp.where(a_ == 0, 1, a_))
        return ga, gb


class Neg(Function):
    @staticmethod
    def forward(ctx: Context, x):
        return -x

    @staticmethod
    def backward(ctx: Context, grad):
        return -grad


class Cast(Function):
    """Change dtype; the gradient goes back in the input's dtype."""

    @staticmethod
    def forward(ctx: Context, x, dtype):
        return x.astype(dtype)

    @staticmethod
    def backward(ctx: Context, grad):
        return grad, None


class ToDevice(Function):
    """Copy between host and GPU; the gradient makes the trip back."""

    @staticmethod
    def forward(ctx: Context, x, device):
        ctx.device = "cuda" if array_module(x) is not np else "cpu"
        return compat.to_device(x, device)

    @staticmethod
    def backward(ctx: Context, grad):
        return compat.to_device(grad, ctx.device), None


class Clone(Function):
    @staticmethod
    def forward(ctx: Context, x):
        return x.copy()

    @staticmethod
    def backward(ctx: Context, grad):
        return grad


# ------------------------------------------------------------------ math functions
class Abs(Function):
    @staticmethod
    def forward(ctx: Context, x):
        ctx.save_for_backward(x)
        return _xp(x).abs(x)

    @staticmethod
    def backward(ctx: Context, grad):  # sign(x), and 0 at the kink, as PyTorch
        (x,) = ctx.saved_tensors
        return grad * _xp(x).sign(x)


class Exp(Function):
    @staticmethod
    def forward(ctx: Context, x):
        y = _xp(x).exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Context, grad):  # d e^x = e^x
        (y,) = ctx.saved_tensors
        return grad * y


class Log(Function):
    @staticmethod
    def forward(ctx: Context, x):
        ctx.save_for_backward(x)
        return _xp(x).log(x)

    @staticmethod
    def backward(ctx: Context, grad):  # d ln x = 1/x
        (x,) = ctx.saved_tensors
        return grad / x


class Log1p(Function):
    @staticmethod
    def forward(ctx: Context, x):
        ctx.save_for_backward(x)
        return _xp(x).log1p(x)

    @staticmethod
    def backward(ctx: Context, grad):
        (x,) = ctx.saved_tensors
        return grad / (1 + x)


class Sqrt(Function):
    @staticmethod
    def forward(ctx: Context, x):
        y = _xp(x).sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Context, grad):  # d sqrt(x) = 1 / (2 sqrt(x))
        (y,) = ctx.saved_tensors
        return grad / (2 * y)


class Rsqrt(Function):
    @staticmethod
    def forward(ctx: Context, x):
        y = 1 / _xp(x).sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Context, grad):  # d x^(-1/2) = -x^(-3/2) / 2
        (y,) = ctx.saved_tensors
        return -0.5 * grad * y * y * y


class Sin(Function):
    @staticmethod
    def forward(ctx: Context, x):
        ctx.save_for_backward(x)
        return _xp(x).sin(x)

    @staticmethod
    def backward(ctx: Context, grad):
        (x,) = ctx.saved_tensors
        return grad * _xp(x).cos(x)


class Cos(Function):
    @staticmethod
    def forward(ctx: Context, x):
        ctx.save_for_backward(x)
        return _xp(x).cos(x)

    @staticmethod
    def backward(ctx: Context, grad):
        (x,) = ctx.saved_tensors
        return -grad * _xp(x).sin(x)


class Square(Function):
    @staticmethod
    def forward(ctx: Context, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx: Context, grad):  # d x^2 = 2x
        (x,) = ctx.saved_tensors
        return 2 * grad * x


class Erf(Function):
    @staticmethod
    def forward(ctx: Context, x):
        ctx.save_for_backward(x)
        return compat.erf(x).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx: Context, grad):  # d erf(x) = 2/sqrt(pi) e^(-x^2)
        (x,) = ctx.saved_tensors
        return grad * (2 / math.sqrt(math.pi)) * _xp(x).exp(-x * x)


class Atan2(Function):
    """The angle of the point (other, input), i.e. atan(input / other) in the right quadrant."""

    @staticmethod
    def forward(ctx: Context, y, x):
        check_broadcast("atan2", y, x)
        ctx.save_for_backward(y, x)
        return _xp(y, x).arctan2(y, x)

    @staticmethod
    def backward(ctx: Context, grad):  # d/dy = x / (x^2 + y^2),  d/dx = -y / (x^2 + y^2)
        y, x = ctx.saved_tensors
        r2 = x * x + y * y
        return grad * x / r2, -grad * y / r2


class Step(Function):
    """floor, ceil, round, sign: piecewise constant, so the gradient is 0 (PyTorch's choice
    also at the jumps, where there is no derivative)."""

    @staticmethod
    def forward(ctx: Context, x, fn):
        return fn(x)

    @staticmethod
    def backward(ctx: Context, grad):
        return _xp(grad).zeros_like(grad), None


# ------------------------------------------------------------------ activations
class Tanh(Function):
    @staticmethod
    def forward(ctx: Context, x):
        y = _xp(x).tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Context, grad):  # d tanh = 1 - tanh^2
        (y,) = ctx.saved_tensors
        return grad * (1 - y * y)


def _sigmoid(x):
    """1 / (1 + e^-x) without overflow: e^-x only ever sees x >= 0, or e^x with x < 0."""
    xp = _xp(x)
    z = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + z), z / (1 + z))


class Sigmoid(Function):
    @staticmethod
    def forward(ctx: Context, x):
        y = _sigmoid(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Context, grad):  # d sigma = sigma (1 - sigma)
        (y,) = ctx.saved_tensors
        return grad * y * (1 - y)


class Clamp(Function):
    """min(max(x, lo), hi); a bound is None, a number, or a tensor that broadcasts with x."""

    @staticmethod
    def forward(ctx: Context, x, lo, hi):
        for name, bound in (("min", lo), ("max", hi)):
            if bound is not None:
                check_broadcast(f"clamp (input and {name})", x, bound)
        ctx.save_for_backward(x, lo, hi)
        y = _xp(x).clip(x, lo, hi)
        # number bounds keep x's dtype, as in PyTorch; tensor bounds promote
        return y if is_array(lo) or is_array(hi) else y.astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx: Context, grad):
        """PyTorch's rule: x gets the gradient inside [lo, hi], bounds included; lo gets it
        where x < lo < hi; hi where x > hi or hi < lo (then the output is hi everywhere)."""
        x, lo, hi = ctx.saved_tensors
        above_lo = True if lo is None else x >= lo
        below_hi = True if hi is None else x <= hi
        g_lo = g_hi = None
        if ctx.needs_input_grad[1]:
            g_lo = grad * (~above_lo & (True if hi is None else lo < hi))
        if ctx.needs_input_grad[2]:
            g_hi = grad * (~below_hi | (False if lo is None else hi < lo))
        return grad * (above_lo & below_hi), g_lo, g_hi


class Maximum(Function):
    @staticmethod
    def forward(ctx: Context, a, b):
        check_broadcast("maximum", a, b)
        ctx.save_for_backward(a, b)
        return _xp(a, b).maximum(a, b)

    @staticmethod
    def backward(ctx: Context, grad):  # the larger input takes it; a tie splits it in half
        a, b = ctx.saved_tensors
        share = (a > b) + 0.5 * (a == b)
        return grad * share, grad * (1 - share)


class Minimum(Function):
    @staticmethod
    def forward(ctx: Context, a, b):
        check_broadcast("minimum", a, b)
        ctx.save_for_backward(a, b)
        return _xp(a, b).minimum(a, b)

    @staticmethod
    def backward(ctx: Context, grad):
        a, b = ctx.saved_tensors
        share = (a < b) + 0.5 * (a == b)
        return grad * share, grad * (1 - share)


class Where(Function):
    @staticmethod
    def forward(ctx: Context, condition, a, b):
        xp = _xp(condition, a, b)
        check_broadcast("where (condition and input)", condition, a)
        check_broadcast("where (condition and other)", condition, b)
        check_broadcast("where (input and other)", a, b)
        ctx.save_for_backward(condition)
        return xp.where(condition, a, b)

    @staticmethod
    def backward(ctx: Context, grad):  # each branch gets the gradient where it was chosen
        (cond,) = ctx.saved_tensors
        zero = grad.dtype.type(0)
        return None, _xp(grad).where(cond, grad, zero), _xp(grad).where(cond, zero, grad)


# ------------------------------------------------------------------ public functions
def add(input: Any, other: Any, *, alpha: Any = 1) -> Tensor:
    """input + alpha * other, broadcast. Gradient: the incoming gradient, summed to each shape."""
    return Add.apply(input, _scaled("add", other, alpha))


def sub(input: Any, other: Any, *, alpha: Any = 1) -> Tensor:
    """input - alpha * other, broadcast."""
    return Sub.apply(input, _scaled("sub", other, alpha))


def _scaled(op: str, other: Any, alpha: Any) -> Any:
    """alpha * other, PyTorch's ``alpha=`` of add and sub (no extra op when alpha is 1)."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.number)):
        raise TypeError(f"{op}: alpha must be a number, got {alpha!r}")
    if alpha == 1:
        return other
    kind = getattr(other, "dtype", np.asarray(other).dtype).kind
    if isinstance(alpha, float) and kind in "biu":
        raise RuntimeError(f"{op}: for integral input tensors, argument alpha must not be a "
                           f"floating point number, got {alpha}")
    return Mul.apply(other, alpha) if isinstance(other, Tensor) else other * alpha


def mul(input: Any, other: Any) -> Tensor:
    return Mul.apply(input, other)


def div(input: Any, other: Any) -> Tensor:
    return Div.apply(input, other)


def pow(input: Any, exponent: Any) -> Tensor:
    return Pow.apply(input, exponent)


def neg(input: Tensor) -> Tensor:
    return Neg.apply(input)


def cast(input: Tensor, dtype: Any) -> Tensor:
    return Cast.apply(input, np.dtype(dtype))


def to_device(input: Tensor, device: str) -> Tensor:
    return ToDevice.apply(input, device)


def clone(input: Tensor) -> Tensor:
    return Clone.apply(input)


def abs(input: Tensor) -> Tensor:
    return Abs.apply(input)


def exp(input: Tensor) -> Tensor:
    return Exp.apply(input)


def log(input: Tensor) -> Tensor:
    return Log.apply(input)


def log1p(input: Tensor) -> Tensor:
    return Log1p.apply(input)


def sqrt(input: Tensor) -> Tensor:
    return Sqrt.apply(input)


def rsqrt(input: Tensor) -> Tensor:
    return Rsqrt.apply(input)


def sin(input: Tensor) -> Tensor:
    return Sin.apply(input)


def cos(input: Tensor) -> Tensor:
    return Cos.apply(input)


def tanh(input: Tensor) -> Tensor:
    return Tanh.apply(input)


def sigmoid(input: Tensor) -> Tensor:
    return Sigmoid.apply(input)


def clamp(input: Tensor, min: Any = None, max: Any = None) -> Tensor:
    """Limit to [min, max]; either bound may be None, a number or a tensor (broadcast).
    Gradient w.r.t. input: 1 inside [min, max] (bounds included), 0 outside."""
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    return Clamp.apply(input, min, max)


clip = clamp


def maximum(input: Any, other: Any) -> Tensor:
    return Maximum.apply(input, other)


def minimum(input: Any, other: Any) -> Tensor:
    return Minimum.apply(input, other)


def where(condition: Any, input: Any = None, other: Any = None) -> Any:
    """``input`` where ``condition`` is True, else ``other`` (all three broadcast).

    ``where(condition)`` alone is ``nonzero(condition, as_tuple=True)``. The condition must be
    bool; uint8 is still accepted with PyTorch's deprecation warning.
    """
    cond = condition.data if isinstance(condition, Tensor) else np.asarray(condition)
    if input is None and other is None:
        from tinyvision.functional.sorting import nonzero

        return nonzero(Tensor(cond), as_tuple=True)
    if input is None or other is None:
        raise TypeError("where: give both input and other, or neither (the one-argument form)")
    if cond.dtype == np.uint8:
        warnings.warn("where received a uint8 condition tensor. This behavior is deprecated; "
                      "use a boolean condition instead.", UserWarning, stacklevel=2)
        cond = cond.astype(bool)
    elif cond.dtype != bool:
        raise TypeError(f"where expected condition to be a boolean tensor, but got a tensor with dtype {cond.dtype}")
    return Where.apply(cond, input, other)


def square(input: Tensor) -> Tensor:
    return Square.apply(input)


def erf(input: Tensor) -> Tensor:
    """The error function, 2/sqrt(pi) * integral_0^x e^(-t^2) dt."""
    return Erf.apply(input)


def atan2(input: Any, other: Any) -> Tensor:
    """atan(input / other) in the quadrant of the point (other, input), in (-pi, pi]."""
    return Atan2.apply(input, other)


arctan2 = atan2


def lerp(input: Any, end: Any, weight: Any) -> Tensor:
    """input + weight * (end - input), all broadcast; weight a number or a tensor."""
    return add(input, mul(weight, sub(end, input)))


def floor(input: Tensor) -> Tensor:
    return input if input.dtype.kind in "biu" else Step.apply(input, _xp(input.data).floor)


def ceil(input: Tensor) -> Tensor:
    return input if input.dtype.kind in "biu" else Step.apply(input, _xp(input.data).ceil)


def round(input: Tensor, *, decimals: int = 0) -> Tensor:
    """Round half to even (PyTorch's and NumPy's rule: 0.5 -> 0, 1.5 -> 2), to ``decimals``
    places (negative: to tens, hundreds...). Gradient 0."""
    return Step.apply(input, lambda x: _xp(x).round(x, decimals))


def sign(input: Tensor) -> Tensor:
    return Step.apply(input, _xp(input.data).sign)


def _float_mask(fn: str, input: Any) -> Tensor:
    x = input.data if isinstance(input, Tensor) else np.asarray(input)
    return Tensor(getattr(_xp(x), fn)(x))


def isnan(input: Tensor) -> Tensor: return _float_mask("isnan", input)
def isinf(input: Tensor) -> Tensor: return _float_mask("isinf", input)
def isfinite(input: Tensor) -> Tensor: return _float_mask("isfinite", input)


def isclose(input: Tensor, other: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> Tensor:
    """|input - other| <= atol + rtol * |other|, elementwise (bool)."""
    a = input.data if isinstance(input, Tensor) else np.asarray(input)
    b = other.data if isinstance(other, Tensor) else other
    check_broadcast("isclose", a, b)
    return Tensor(_xp(a, b).isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan))


def allclose(input: Tensor, other: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> bool:
    """True when every element is ``isclose``."""
    return bool(isclose(input, other, rtol, atol, equal_nan).data.all())


# ------------------------------------------------------------------ comparisons (no gradient)
def _compare(op: str, ufunc: str, a: Any, b: Any) -> Tensor:
    """``op`` is PyTorch's name (for errors), ``ufunc`` NumPy's."""
    a = a.data if isinstance(a, Tensor) else a
    b = b.data if isinstance(b, Tensor) else b
    check_broadcast(op, a, b)
    return Tensor(getattr(_xp(a, b), ufunc)(a, b))


def eq(input: Any, other: Any) -> Tensor: return _compare("eq", "equal", input, other)
def ne(input: Any, other: Any) -> Tensor: return _compare("ne", "not_equal", input, other)
def lt(input: Any, other: Any) -> Tensor: return _compare("lt", "less", input, other)
def le(input: Any, other: Any) -> Tensor: return _compare("le", "less_equal", input, other)
def gt(input: Any, other: Any) -> Tensor: return _compare("gt", "greater", input, other)
def ge(input: Any, other: Any) -> Tensor: return _compare("ge", "greater_equal", input, other)
def logical_and(input: Any, other: Any) -> Tensor: return _compare("logical_and", "logical_and", input, other)
def logical_or(input: Any, other: Any) -> Tensor: return _compare("logical_or", "logical_or", input, other)


def logical_not(input: Tensor) -> Tensor:
    return Tensor(_xp(input.data).logical_not(input.data))
