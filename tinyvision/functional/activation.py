"""Activation functions, as ``torch.nn.functional``: one Function class each.

Each ``forward`` computes y = f(x) on raw arrays and saves what its derivative needs; each
``backward`` multiplies the incoming gradient by f'(x). Where f has a kink, the derivative
there is PyTorch's choice (stated per op), so that gradients match torch exactly:

    relu       max(x, 0)                               f' = 1 for x > 0, else 0
    leaky_relu x if x > 0 else a x                     f' = 1 or a (a at 0)
    prelu      leaky_relu with a learned slope a per channel (dim 1)
    hardtanh   clamp(x, lo, hi)                        f' = 1 strictly inside, else 0
    relu6      hardtanh(x, 0, 6)
    elu        x if x > 0 else alpha (e^x - 1)         f' = alpha e^x for x <= 0
    selu       scale * elu(x, alpha), fixed scale, alpha (self-normalising constants)
    gelu       x Phi(x), or its tanh approximation
    silu       x sigma(x)                              f' = sigma (1 + x (1 - sigma))
    mish       x tanh(softplus(x))                     f' = tanh(sp) + x sigma(x) (1 - tanh(sp)^2)
    softplus   log(1 + e^(beta x)) / beta              f' = sigma(beta x)
    logsigmoid log sigma(x) = -softplus(-x)            f' = 1 - sigma(x) = sigma(-x)
    hardsigmoid relu6(x + 3) / 6                       f' = 1/6 strictly inside (-3, 3)
    hardswish  x relu6(x + 3) / 6                      f' = x/3 + 1/2 on (-3, 3), 0 below, 1 from 3 on
    softsign   x / (1 + |x|)                           f' = 1 / (1 + |x|)^2
    glu        a sigma(b), (a, b) the two halves of x along dim

``inplace`` is accepted where torch has it, for its signature, and ignored: a new tensor is
returned (see nn/activation.py for the one visible difference).

``sigmoid`` and ``tanh`` are math functions as much as activations (``torch.sigmoid``) and
stay with the elementwise ops; ``softmax`` and ``log_softmax`` are reductions.
"""
from __future__ import annotations

import math

from tinyvision.autograd.function import Context, Function
from tinyvision.autograd.tensor import Tensor
from tinyvision.functional._util import check_floating, normalize_dim
from tinyvision.functional.elementwise import _sigmoid
from tinyvision.kernels.compat import array_module
from tinyvision.kernels.dispatch import kernel


def _softplus(x):
    """log(1 + e^x) = max(x, 0) + log1p(e^-|x|): never overflows."""
    xp = array_module(x)
    return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))


# ------------------------------------------------------------------ rectifiers
class ReLU(Function):
    @staticmethod
    def forward(ctx: Context, x):
        ctx.save_for_backward(x > 0)
        return array_module(x).maximum(x, 0)  # not x * (x > 0): that turns -inf into -inf * 0 = nan

    @staticmethod
    def backward(ctx: Context, grad):  # 1 where x > 0, else 0 (0 at x == 0, as PyTorch)
        (mask,) = ctx.saved_tensors
        return grad * mask


class LeakyReLU(Function):
    @staticmethod
    def forward(ctx: Context, x, negative_slope):
        slope = array_module(x).where(x > 0, 1, negative_slope).astype(x.dtype)
        ctx.save_for_backward(slope)
        return x * slope

    @staticmethod
    def backward(ctx: Context, grad):
        (slope,) = ctx.saved_tensors
        return grad * slope, None


class PReLU(Function):
    """x if x > 0 else a_c x, with a (C,) (or (1,)) broadcast along dim 1.
    dL/dx = grad * (1 or a_c);  dL/da_c = sum over everything but the channel of grad * x * [x <= 0]."""

    @staticmethod
    def forward(ctx: Context, x, a):
        xp = array_module(x)
        shape = [1] * x.ndim
        if x.ndim >= 2:
            shape[1] = a.shape[0]
        a_b = a.reshape(shape) if x.ndim else a.reshape(())
        ctx.save_for_backward(x, a_b)
        ctx.a_shape = a.shape
        return xp.where(x > 0, x, a_b * x)

    @staticmethod
    def backward(ctx: Context, grad):
        x, a_b = ctx.saved_tensors
        xp = array_module(x)
        dx = xp.where(x > 0, grad, grad * a_b) if ctx.needs_input_grad[0] else None
        da = None
        if ctx.needs_input_grad[1]:
            contrib = xp.where(x > 0, 0, grad * x)
            axes = tuple(d for d in range(x.ndim) if not (d == 1 and ctx.a_shape[0] > 1))
            da = contrib.sum(axis=axes).reshape(ctx.a_shape)
        return dx, da


class Hardtanh(Function):
    @staticmethod
    def forward(ctx: Context, x, min_val, max_val):
        ctx.save_for_backward((x > min_val) & (x < max_val))
        return array_module(x).clip(x, min_val, max_val).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx: Context, grad):  # 1 strictly inside (lo, hi), 0 at and beyond the bounds (torch)
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None


class ELU(Function):
    """scale * (x if x > 0 else alpha (e^x - 1)); elu has scale 1, selu its fixed constants."""

    @staticmethod
    def forward(ctx: Context, x, alpha, scale):
        xp = array_module(x)
        neg = alpha * xp.expm1(xp.minimum(x, 0))  # minimum: e^x never overflows for large x
        ctx.save_for_backward(x, neg)
        ctx.alpha, ctx.scale = alpha, scale
        return (scale * xp.where(x > 0, x, neg)).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx: Context, grad):  # f' = scale for x > 0, scale * alpha e^x = scale (neg + alpha) for x <= 0
        x, neg = ctx.saved_tensors
        d = array_module(x).where(x > 0, 1, neg + ctx.alpha) * ctx.scale
        return (grad * d).astype(grad.dtype, copy=False), None, None


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


# ------------------------------------------------------------------ smooth gates
_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


class GELU(Function):
    """x * Phi(x) (exact, with erf) or PyTorch's tanh approximation."""

    @staticmethod
    def forward(ctx: Context, x, approximate):
        xp = array_module(x)
        ctx.save_for_backward(x)
        ctx.approximate = approximate
        if approximate == "tanh":
            return 0.5 * x * (1 + xp.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x ** 3)))
        return kernel("activation", "gelu_forward", x)(x)  # 0.5 x (1 + erf(x / sqrt 2)), fused

    @staticmethod
    def backward(ctx: Context, grad):
        (x,) = ctx.saved_tensors
        xp = array_module(x)
        if ctx.approximate == "tanh":  # d/dx 0.5x(1+tanh u) = 0.5(1+t) + 0.5x(1-t^2) u'
            u = _SQRT_2_OVER_PI * (x + 0.044715 * x ** 3)
            t = xp.tanh(u)
            du = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)
            return grad * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du), None
        # d/dx x Phi(x) = Phi(x) + x phi(x), fused (kernels/reference/activation.py writes it out)
        return kernel("activation", "gelu_backward", x)(x, grad), None


class SiLU(Function):
    @staticmethod
    def forward(ctx: Context, x):
        s = _sigmoid(x)
        ctx.save_for_backward(x, s)
        return x * s

    @staticmethod
    def backward(ctx: Context, grad):  # d x sigma(x) = sigma (1 + x (1 - sigma))
        x, s = ctx.saved_tensors
        return grad * s * (1 + x * (1 - s))


class Mish(Function):
    @staticmethod
    def forward(ctx: Context, x):
        t = array_module(x).tanh(_softplus(x))
        ctx.save_for_backward(x, t)
        return x * t

    @staticmethod
    def backward(ctx: Context, grad):  # d/dx x tanh(sp(x)) = tanh(sp) + x (1 - tanh^2) sigma(x)
        x, t = ctx.saved_tensors
        return grad * (t + x * (1 - t * t) * _sigmoid(x))


class Softplus(Function):
    """log(1 + e^(beta x)) / beta, linear where beta x > threshold (PyTorch's rule)."""

    @staticmethod
    def forward(ctx: Context, x, beta, threshold):
        xp = array_module(x)
        bx = beta * x
        ctx.save_for_backward(bx)
        ctx.threshold = threshold
        return xp.where(bx > threshold, x, _softplus(bx) / beta).astype(x.dtype)

    @staticmethod
    def backward(ctx: Context, grad):  # d softplus = sigmoid(beta x)
        (bx,) = ctx.saved_tensors
        return array_module(bx).where(bx > ctx.threshold, grad, grad * _sigmoid(bx)), None, None


class LogSigmoid(Function):
    @staticmethod
    def forward(ctx: Context, x):  # log sigma(x) = -softplus(-x) = min(x, 0) - log1p(e^-|x|)
        xp = array_module(x)
        ctx.save_for_backward(x)
        return xp.minimum(x, 0) - xp.log1p(xp.exp(-xp.abs(x)))

    @staticmethod
    def backward(ctx: Context, grad):  # d log sigma(x) = 1 - sigma(x) = sigma(-x)
        (x,) = ctx.saved_tensors
        return grad * _sigmoid(-x)


class Hardsigmoid(Function):
    @staticmethod
    def forward(ctx: Context, x):
        ctx.save_for_backward((x > -3) & (x < 3))
        return (array_module(x).clip(x + 3, 0, 6) / 6).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx: Context, grad):  # 1/6 strictly inside (-3, 3), as torch
        (inside,) = ctx.saved_tensors
        return grad * inside / 6


class Hardswish(Function):
    @staticmethod
    def forward(ctx: Context, x):
        ctx.save_for_backward(x)
        return (x * array_module(x).clip(x + 3, 0, 6) / 6).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx: Context, grad):  # torch: 0 for x <= -3, x/3 + 1/2 for -3 < x < 3, 1 from 3 on
        (x,) = ctx.saved_tensors
        xp = array_module(x)
        d = xp.where(x <= -3, 0, xp.where(x < 3, x / 3 + 0.5, 1))
        return (grad * d).astype(grad.dtype, copy=False)


class Softsign(Function):
    @staticmethod
    def forward(ctx: Context, x):
        d = 1 + array_module(x).abs(x)
        ctx.save_for_backward(d)
        return x / d

    @staticmethod
    def backward(ctx: Context, grad):  # d x/(1+|x|) = 1/(1+|x|)^2
        (d,) = ctx.saved_tensors
        return grad / (d * d)


class GLU(Function):
    """(a, b) = the halves of x along ``dim``; y = a sigma(b).
    dL/da = grad sigma(b);  dL/db = grad a sigma(b) (1 - sigma(b))."""

    @staticmethod
    def forward(ctx: Context, x, dim):
        xp = array_module(x)
        a, b = xp.split(x, 2, axis=dim)
        s = _sigmoid(b)
        ctx.save_for_backward(a, s)
        ctx.dim = dim
        return a * s

    @staticmethod
    def backward(ctx: Context, grad):
        a, s = ctx.saved_tensors
        xp = array_module(a)
        return xp.concatenate([grad * s, grad * a * s * (1 - s)], axis=ctx.dim), None


# ------------------------------------------------------------------ public functions
def relu(input: Tensor, inplace: bool = False) -> Tensor:
    return ReLU.apply(input)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    return LeakyReLU.apply(input, negative_slope)


def prelu(input: Tensor, weight: Tensor) -> Tensor:
    """x if x > 0 else weight[c] * x, ``weight`` (C,) along dim 1 (or (1,) for all channels)."""
    check_floating("prelu", "input", input)
    channels = input.shape[1] if input.ndim >= 2 else 1
    if weight.ndim != 1 or weight.shape[0] not in (1, channels):
        raise ValueError(f"prelu: weight must have shape (1,) or ({channels},) (the channels, dim 1 "
                         f"of input {input.shape}), got {weight.shape}")
    return PReLU.apply(input, weight)


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val ({min_val}) must not exceed max_val ({max_val})")
    return Hardtanh.apply(input, min_val, max_val)


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    """min(max(x, 0), 6) (hardtanh with bounds 0 and 6, so f' = 0 at 0 and at 6, as torch)."""
    return Hardtanh.apply(input, 0.0, 6.0)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    return ELU.apply(input, alpha, 1.0)


def selu(input: Tensor, inplace: bool = False) -> Tensor:
    """scale * elu(x, alpha) with Klambauer et al.'s constants (alpha ~ 1.6733, scale ~ 1.0507)."""
    return ELU.apply(input, _SELU_ALPHA, _SELU_SCALE)


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """Gaussian error linear unit; ``approximate`` is 'none' (erf) or 'tanh', as in PyTorch."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return GELU.apply(input, approximate)


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    return SiLU.apply(input)


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    return Mish.apply(input)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    return Softplus.apply(input, beta, threshold)


def logsigmoid(input: Tensor) -> Tensor:
    return LogSigmoid.apply(input)


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    return Hardsigmoid.apply(input)


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    return Hardswish.apply(input)


def softsign(input: Tensor) -> Tensor:
    return Softsign.apply(input)


def glu(input: Tensor, dim: int = -1) -> Tensor:
    """Gated linear unit: a * sigmoid(b) for (a, b) the two halves of ``input`` along ``dim``."""
    check_floating("glu", "input", input)
    if input.ndim == 0:
        raise ValueError("glu: input must have at least one dim, got a 0-d tensor")
    axis = normalize_dim(dim, input.ndim, "glu")
    if input.shape[axis] % 2:
        raise ValueError(f"glu: dim {dim} of input {input.shape} has size {input.shape[axis]}, "
                         "which must be even (it is halved)")
    return GLU.apply(input, axis)
