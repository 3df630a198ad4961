"""Normalisation layers' ops: ``batch_norm``, ``layer_norm``, ``group_norm`` (one fused Function
between them), ``local_response_norm``, plus ``normalize`` and ``embedding``.

The three statistics-based norms differ only in *which axes* the mean and variance are taken
over and in the shape of the affine parameters:

    batch_norm   x (N, C, *)   stats over N and *, per channel      weight (C,)
    layer_norm   x (*, D...)   stats over the trailing dims D...    weight D...
    group_norm   x (N, C, *)   stats over C/G channels and *        weight (C,)

so all three call :class:`Standardize`, y = (x - mean) / sqrt(var + eps) * weight + bias, with
``weight``/``bias`` reshaped to broadcast against x (the engine sums their gradients back).
See docs/normalization.md for the forward and backward math.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from tinyvision.autograd.function import Context, Function
from tinyvision.autograd.tensor import Tensor
from tinyvision.functional import elementwise as E
from tinyvision.functional import reduction as R
from tinyvision.functional._util import check_eps, check_floating, check_tensor, int_sizes
from tinyvision.functional.shape import reshape
from tinyvision.kernels.compat import array_module, scatter_add
from tinyvision.kernels.dispatch import kernel


def _data(t: Any):
    """The raw array of a Tensor (or the array itself)."""
    return t.data if isinstance(t, Tensor) else t


def _shape(t: Any) -> tuple[int, ...] | None:
    return None if t is None else tuple(t.shape)


def _check_param(op: str, name: str, t: Any, expected: tuple[int, ...], input: Tensor, why: str) -> None:
    """A weight / bias / running statistic must have exactly ``expected`` shape."""
    if t is not None:
        check_tensor(op, name, t, arrays=True)
    if t is not None and tuple(t.shape) != expected:
        raise ValueError(f"{op}: {name} has shape {tuple(t.shape)} but input of shape {input.shape} "
                         f"needs {expected} ({why})")


def _moments(x, axes: tuple[int, ...]):
    """Mean and biased variance over ``axes``, kept as size-1 dims so they broadcast on x."""
    mean = x.mean(axis=axes, keepdims=True)
    d = x - mean
    return mean, (d * d).mean(axis=axes, keepdims=True)


def _broadcast_param(t: Tensor | None, shape: tuple[int, ...]) -> Tensor | None:
    """Reshape a weight/bias (differentiably) so that it broadcasts against the input."""
    return None if t is None else reshape(t, shape)


class Standardize(Function):
    """y = x_hat * weight + bias with x_hat = (x - mean) / sqrt(var + eps).

    ``mean``/``var`` arrive as plain arrays of the reduced shape (size-1 dims on ``axes``).
    ``batch_stats`` says whether they are the statistics of x itself (training batch norm,
    layer norm, group norm: they then depend on x) or constants (eval batch norm).

    Backward, with g' = dL/dy * weight and M the number of elements per statistic:

        dL/dweight = sum(dL/dy * x_hat)          dL/dbias = sum(dL/dy)   (summed by the engine)
        constants:  dL/dx = g' / sqrt(var + eps)
        batch:      dL/dx = 1/M * inv_std * (M g' - sum(g') - x_hat * sum(g' x_hat))

    The batch formula is the chain rule through mean and var folded into one expression:
    d mean/dx = 1/M and d var/dx = 2 (x - mean)/M, whose contributions are the two sums.
    """

    @staticmethod
    def forward(ctx: Context, x, weight, bias, mean, var, axes, eps, batch_stats):
        xp = array_module(x)
        inv_std = (1.0 / xp.sqrt(var + eps)).astype(x.dtype, copy=False)
        x_hat = (x - mean.astype(x.dtype, copy=False)) * inv_std
        y = x_hat if weight is None else x_hat * weight
        if bias is not None:
            y = y + bias
        ctx.save_for_backward(x_hat, inv_std, weight)
        ctx.axes, ctx.batch_stats = axes, batch_stats
        return y

    @staticmethod
    def backward(ctx: Context, grad):
        x_hat, inv_std, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx = None
        if need_x:
            g = grad if weight is None else grad * weight
            if ctx.batch_stats:  # 1/M (M g - sum g - x_hat sum(g x_hat)), as means
                gx = inv_std * (g - g.mean(axis=ctx.axes, keepdims=True)
                                - x_hat * (g * x_hat).mean(axis=ctx.axes, keepdims=True))
            else:
                gx = g * inv_std
        gw = grad * x_hat if need_w else None
        gb = grad if need_b else None
        return gx, gw, gb, None, None, None, None, None


class LayerNorm(Function):
    """Layer norm over the last ``k`` dims as one fused kernel on the (rows, C) view of x (the
    math, forward and backward, is written out in kernels/reference/normalization.py).
    Standardize above computes the same thing from NumPy expressions; this node exists for
    speed: it is on every transformer block's path twice."""

    @staticmethod
    def forward(ctx: Context, x, weight, bias, k, eps):
        c = math.prod(x.shape[x.ndim - k:])
        rows = x.reshape(x.size // c, c)
        y, mean, rstd = kernel("normalization", "layer_norm_forward", x)(
            rows, None if weight is None else weight.reshape(c), None if bias is None else bias.reshape(c), eps)
        ctx.save_for_backward(rows, weight, mean, rstd)
        ctx.shape, ctx.normalized_shape = x.shape, x.shape[x.ndim - k:]
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx: Context, grad):
        rows, weight, mean, rstd = ctx.saved_tensors
        dx, dw, db = kernel("normalization", "layer_norm_backward", rows)(
            grad.reshape(rows.shape), rows, None if weight is None else weight.reshape(-1), mean, rstd)
        need_w, need_b = ctx.needs_input_grad[1:3]
        return (dx.reshape(ctx.shape), dw.reshape(ctx.normalized_shape) if need_w else None,
                db.reshape(ctx.normalized_shape) if need_b else None, None, None)


def _update_running(running: Any, batch, momentum: float) -> None:
    """running <- (1 - momentum) running + momentum batch, in place (so the caller's buffer
    changes, as in PyTorch)."""
    r = _data(running)
    r[...] = (1.0 - momentum) * r + momentum * batch.reshape(r.shape)


def batch_norm(input: Tensor, running_mean: Any, running_var: Any, weight: Tensor | None = None,
               bias: Tensor | None = None, training: bool = False, momentum: float = 0.1,
               eps: float = 1e-5) -> Tensor:
    """Batch normalisation over N and the spatial dims, per channel (dim 1).

    input: (N, C), (N, C, L) or (N, C, H, W); running_mean, running_var, weight, bias: (C,).
    training=True normalises with the batch mean and *biased* variance and, when the running
    buffers are given, updates them in place: running_mean with the batch mean and
    running_var with the *unbiased* variance (times M / (M - 1)), weighted by ``momentum``.
    training=False normalises with the running statistics.
    """
    check_floating("batch_norm", "input", input)
    check_eps("batch_norm", eps)
    if input.ndim < 2:
        raise ValueError(f"batch_norm: input must be (N, C, *), got shape {input.shape}")
    c = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        _check_param("batch_norm", name, t, (c,), input, f"one value per channel, C = {c}")
    axes = (0,) + tuple(range(2, input.ndim))
    shape = (c,) + (1,) * (input.ndim - 2)  # broadcasts against (N, C, *)
    if training:
        m = input.numel() // max(c, 1)
        if m <= 1:
            raise ValueError(f"batch_norm: expected more than 1 value per channel when training, "
                             f"got input of shape {input.shape}")
        mean, var = _moments(input.data, axes)
        if running_mean is not None:
            _update_running(running_mean, mean, momentum)
        if running_var is not None:
            _update_running(running_var, var * (m / (m - 1)), momentum)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: running_mean and running_var are required when training=False "
                             f"(got shapes {_shape(running_mean)} and {_shape(running_var)})")
        mean = _data(running_mean).reshape(shape)
        var = _data(running_var).reshape(shape)
    return Standardize.apply(input, _broadcast_param(weight, shape), _broadcast_param(bias, shape),
                             mean, var, axes, eps, training)


def layer_norm(input: Tensor, normalized_shape: int | Sequence[int], weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalise over the trailing dims ``normalized_shape`` (biased variance).

    input: (*, *normalized_shape); weight, bias: normalized_shape (elementwise affine).
    """
    check_floating("layer_norm", "input", input)
    check_eps("layer_norm", eps)
    shape = int_sizes("layer_norm", "normalized_shape", normalized_shape)
    k = len(shape)
    if k == 0 or k > input.ndim or input.shape[input.ndim - k:] != shape:
        raise ValueError(f"layer_norm: normalized_shape {shape} does not match the trailing dims "
                         f"of input of shape {input.shape}")
    for name, t in (("weight", weight), ("bias", bias)):
        _check_param("layer_norm", name, t, shape, input, "it must equal normalized_shape")
    if input.numel() == 0:  # nothing to normalise; the expression path handles the empty shapes
        axes = tuple(range(input.ndim - k, input.ndim))
        mean, var = _moments(input.data, axes)
        return Standardize.apply(input, weight, bias, mean, var, axes, eps, True)
    return LayerNorm.apply(input, weight, bias, k, float(eps))


def group_norm(input: Tensor, num_groups: int, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Split the C channels into ``num_groups`` groups and normalise each group of each sample
    over its C/G channels and the spatial dims; then a per-channel affine.

    input: (N, C, *); weight, bias: (C,). Implemented on the view (N, G, C/G, *).
    """
    check_floating("group_norm", "input", input)
    check_eps("group_norm", eps)
    if input.ndim < 2:
        raise ValueError(f"group_norm: input must be (N, C, *), got shape {input.shape}")
    n, c, rest = input.shape[0], input.shape[1], input.shape[2:]
    if num_groups <= 0 or c % num_groups:
        raise ValueError(f"group_norm: num_groups={num_groups} must divide the number of channels "
                         f"C={c} (input of shape {input.shape})")
    for name, t in (("weight", weight), ("bias", bias)):
        _check_param("group_norm", name, t, (c,), input, f"one value per channel, C = {c}")
    grouped = reshape(input, (n, num_groups, c // num_groups) + rest)
    axes = tuple(range(2, grouped.ndim))
    shape = (num_groups, c // num_groups) + (1,) * len(rest)  # broadcasts against (N, G, C/G, *)
    mean, var = _moments(grouped.data, axes)
    y = Standardize.apply(grouped, _broadcast_param(weight, shape), _broadcast_param(bias, shape),
                          mean, var, axes, eps, True)
    return reshape(y, input.shape)


def instance_norm(input: Tensor, running_mean: Any = None, running_var: Any = None, weight: Tensor | None = None,
                  bias: Tensor | None = None, use_input_stats: bool = True, momentum: float = 0.1,
                  eps: float = 1e-5) -> Tensor:
    """Normalise each channel of each sample over its spatial dims (Ulyanov et al. 2016: style
    transfer; it removes per-image contrast), then a per-channel affine.

    input: (N, C, *) with at least one spatial dim; running_mean, running_var, weight, bias:
    (C,). It is group_norm with one channel per group. With ``use_input_stats`` and running
    buffers given, they are updated in place with the instance statistics averaged over N
    (the variance unbiased, as batch_norm); ``use_input_stats=False`` normalises with the
    running statistics instead (batch_norm's eval mode).
    """
    op = "instance_norm"
    if input.ndim < 3:
        raise ValueError(f"{op}: input must be (N, C, *) with at least one spatial dim, got shape {input.shape}")
    n, c = input.shape[:2]
    for name, t in (("running_mean", running_mean), ("running_var", running_var)):
        _check_param(op, name, t, (c,), input, f"one value per channel, C = {c}")
    if not use_input_stats:
        return batch_norm(input, running_mean, running_var, weight, bias, False, momentum, eps)
    axes = tuple(range(2, input.ndim))
    m = input.numel() // max(n * c, 1)
    if m <= 1:
        raise ValueError(f"{op}: expected more than 1 spatial element per channel, got input of shape {input.shape}")
    if running_mean is not None or running_var is not None:
        mean, var = _moments(input.data, axes)  # (N, C, 1, ...)
        if running_mean is not None:
            _update_running(running_mean, mean.reshape(n, c).mean(0), momentum)
        if running_var is not None:
            _update_running(running_var, (var * (m / (m - 1))).reshape(n, c).mean(0), momentum)
    return group_norm(input, c, weight, bias, eps)


def _channel_window_sum(a, before: int, after: int):
    """s[:, c] = sum of a[:, c'] for c' in [c - before, c + after], zero outside 0..C-1."""
    xp = array_module(a)
    c = a.shape[1]
    widths = [(0, 0)] * a.ndim
    widths[1] = (before, after)
    padded = xp.pad(a, widths)
    s = padded[:, :c].copy()
    for j in range(1, before + after + 1):
        s += padded[:, j:j + c]
    return s


class LocalResponseNorm(Function):
    """y_c = x_c * s_c^(-beta),  s_c = k + alpha/n * sum_{c' in W(c)} x_c'^2,
    W(c) = [c - n//2, c + (n-1)//2] (PyTorch: alpha is divided by n even where the window is
    clipped at the first/last channel).

    Backward: dL/dx_i = g_i s_i^(-beta) - 2 alpha beta / n * x_i * sum_{c: i in W(c)} g_c x_c s_c^(-beta-1);
    i in W(c) <=> c in [i - (n-1)//2, i + n//2], the mirrored window.
    """

    @staticmethod
    def forward(ctx: Context, x, size, alpha, beta, k):
        s = k + (alpha / size) * _channel_window_sum(x * x, size // 2, (size - 1) // 2)
        p = s ** -beta
        ctx.save_for_backward(x, s, p)
        ctx.size, ctx.alpha, ctx.beta = size, alpha, beta
        return x * p

    @staticmethod
    def backward(ctx: Context, grad):
        x, s, p = ctx.saved_tensors
        n = ctx.size
        t = grad * x * p / s  # g_c x_c s_c^(-beta-1)
        back = _channel_window_sum(t, (n - 1) // 2, n // 2)
        return grad * p - (2.0 * ctx.alpha * ctx.beta / n) * x * back, None, None, None, None


def local_response_norm(input: Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 1.0) -> Tensor:
    """Local response normalisation across channels (AlexNet), PyTorch's formula (alpha / size).

    input: (N, C, *) with at least 3 dims; output: same shape.
    """
    if input.ndim < 3:
        raise ValueError(f"local_response_norm: input must have 3 or more dims (N, C, *), "
                         f"got shape {input.shape}")
    if int(size) < 1:
        raise ValueError(f"local_response_norm: size must be >= 1, got {size}")
    return LocalResponseNorm.apply(input, int(size), float(alpha), float(beta), float(k))


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:
    """x / max(||x||_p, eps) along ``dim`` (as ``torch.nn.functional.normalize``)."""
    return E.div(input, E.clamp(R.norm(input, p, dim, keepdim=True), min=eps))


class Embedding(Function):
    """out[...] = weight[index[...]]: a row lookup. Backward scatter-adds each output row's
    gradient into the row it came from (an index used twice gets both); the padding_idx row
    gets no gradient."""

    @staticmethod
    def forward(ctx: Context, weight, index, padding_idx):
        ctx.save_for_backward(index)
        ctx.shape, ctx.padding_idx = weight.shape, padding_idx
        return weight[index]

    @staticmethod
    def backward(ctx: Context, grad):
        (index,) = ctx.saved_tensors
        gw = array_module(grad).zeros(ctx.shape, dtype=grad.dtype)
        scatter_add(gw, index.reshape(-1), grad.reshape(index.size, ctx.shape[1]))  # no -1: D may be 0
        if ctx.padding_idx is not None:
            gw[ctx.padding_idx] = 0
        return gw, None, None


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Look up rows of ``weight`` (num_embeddings, embedding_dim) by the integer ``input`` (*);
    output (*, embedding_dim)."""
    check_tensor("embedding", "input", input, arrays=True)
    check_tensor("embedding", "weight", weight)
    index = array_module(weight.data).asarray(_data(input))  # on weight's device
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be (num_embeddings, embedding_dim), "
                         f"got shape {weight.shape}")
    if index.dtype.kind not in "iu":
        raise TypeError(f"embedding: input must hold integer indices, got dtype {index.dtype}")
    num = weight.shape[0]
    if index.size and (int(index.min()) < 0 or int(index.max()) >= num):
        raise IndexError(f"embedding: indices must be in [0, {num - 1}] for weight of shape "
                         f"{weight.shape}, got values in [{int(index.min())}, {int(index.max())}]")
    if padding_idx is not None:
        if not -num <= padding_idx < num:
            raise ValueError(f"embedding: padding_idx {padding_idx} is out of range for weight of "
                             f"shape {weight.shape}")
        padding_idx %= num  # -1 means the last row, as in PyTorch
    return Embedding.apply(weight, index, padding_idx)

