"""Losses, taken on logits where PyTorch takes them on logits.

Why ``cross_entropy`` takes logits: it is ``-log softmax(x)[y]``, and ``log_softmax`` is
computed as ``x - logsumexp(x)`` (stable for any logits), never as ``log(softmax(x))``, which
underflows to ``log(0) = -inf`` for a confident wrong class. Its gradient is then simply
``softmax(x) - onehot(y)`` per sample.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from tinyvision.autograd.function import Context, Function
from tinyvision.autograd.tensor import Tensor
from tinyvision.functional import activation as A
from tinyvision.functional import elementwise as E
from tinyvision.functional import reduction as R
from tinyvision.functional._util import check_floating, check_tensor
from tinyvision.functional.indexing import gather
from tinyvision.functional.distance import pairwise_distance
from tinyvision.functional.shape import movedim
from tinyvision.kernels.compat import array_module

_REDUCTIONS = ("mean", "sum", "none")


def legacy_reduction(op: str, size_average: bool | None, reduce: bool | None, reduction: str) -> str:
    """torch's deprecated ``size_average`` / ``reduce`` pair, when given, overrides ``reduction``
    (with torch's warning): reduce=False -> 'none', else size_average=False -> 'sum', else 'mean'."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    legacy = "none" if not reduce else "mean" if size_average else "sum"
    warnings.warn(f"{op}: size_average and reduce are deprecated; use reduction='{legacy}' instead",
                  UserWarning, stacklevel=3)
    return legacy


def _check_reduction(op: str, reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


def _weighted_mean(loss_sum: Tensor, total_weight: Any) -> Tensor:
    """loss_sum / total_weight. When every target is ignored (total 0) this is 0/0 = nan, and
    PyTorch then gives a zero gradient (nothing to learn from), not 0/0 in every gradient."""
    if total_weight == 0:
        return loss_sum * 0.0 + float("nan")
    return loss_sum / total_weight


def _check_weight(op: str, weight: Tensor | None, c: int, input: Tensor) -> None:
    if weight is not None and weight.shape != (c,):
        raise ValueError(f"{op}: weight of shape {weight.shape} must hold one weight per class, "
                         f"shape ({c},), for input of shape {input.shape}")


def _class_last(input: Tensor, target: Tensor, op: str) -> tuple[Tensor, Tensor]:
    """(N, C, d1, ...) logits and (N, d1, ...) targets -> (M, C) and (M,); (C,) and () too."""
    if input.ndim == 0:
        raise ValueError(f"{op}: input must have a class dim, got a 0-d tensor")
    if input.ndim == 1:
        expect = ()
    else:
        expect = (input.shape[0],) + input.shape[2:]
    if target.shape != expect:
        raise ValueError(f"{op}: target of shape {target.shape} does not fit input of shape "
                         f"{input.shape} (class indices need shape {expect})")
    c = input.shape[0] if input.ndim == 1 else input.shape[1]
    return movedim(input, 1, -1).reshape(-1, c) if input.ndim > 1 else input.reshape(1, c), target.reshape(-1)


def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average: bool | None = None,
             ignore_index: int = -100, reduce: bool | None = None, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities ``input`` (N, C[, d...]) at class
    indices ``target`` (N[, d...]): loss_i = -w[y_i] * input[i, y_i]. 'mean' divides by the
    summed weights of the targets that are not ``ignore_index``, as PyTorch."""
    reduction = legacy_reduction("nll_loss", size_average, reduce, reduction)
    _check_reduction("nll_loss", reduction)
    return _nll("nll_loss", input, target, weight, ignore_index, reduction)


def _nll(op: str, input: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int,
         reduction: str) -> Tensor:
    """nll_loss, with errors named after ``op`` (the function the user called)."""
    logp, y = _class_last(input, target, op)
    y_np = y.data
    if y_np.dtype.kind not in "iu":
        raise TypeError(f"{op}: target must hold integer class indices, got dtype {y_np.dtype}")
    c = logp.shape[1]
    keep = y_np != ignore_index
    bad = (y_np[keep] < 0) | (y_np[keep] >= c)
    if bad.any():
        raise IndexError(f"{op}: target values must lie in [0, {c}) or equal ignore_index="
                         f"{ignore_index}; got {sorted(set(y_np[keep][bad].tolist()))[:5]}")
    _check_weight(op, weight, c, input)
    xp = array_module(logp.data)
    safe = xp.where(keep, y_np, 0)
    w = xp.ones(c, dtype=logp.dtype) if weight is None else weight.data.astype(logp.dtype)
    w_i = Tensor(w[safe] * keep)  # ignored targets weigh 0
    picked = gather(logp, 1, Tensor(safe[:, None]))[:, 0]
    losses = -(picked * w_i)
    if reduction == "mean":
        return _weighted_mean(losses.sum(), w_i.data.sum())
    return _reduce(losses.reshape(target.shape), reduction)


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average: bool | None = None,
                  ignore_index: int = -100, reduce: bool | None = None, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy on logits ``input`` (N, C[, d...]) or (C,).

    ``target`` holds class indices (N[, d...]) or class probabilities (same shape as input).
    With ``label_smoothing`` eps the target becomes (1 - eps) * target + eps / C.
    Gradient w.r.t. the logits (unweighted, no smoothing): softmax(x) - onehot(y), / N for 'mean'.
    """
    reduction = legacy_reduction("cross_entropy", size_average, reduce, reduction)
    _check_reduction("cross_entropy", reduction)
    check_floating("cross_entropy", "input", input)
    check_tensor("cross_entropy", "target", target)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    if input.ndim == 0:
        raise ValueError("cross_entropy: input must have a class dim, (C,) or (N, C, ...), got a 0-d tensor")
    class_dim = 0 if input.ndim == 1 else 1
    logp = R.log_softmax(input, class_dim)
    c = input.shape[class_dim]
    _check_weight("cross_entropy", weight, c, input)
    if target.shape == input.shape and target.dtype.kind == "f":  # probabilities
        p = target * (1 - label_smoothing) + label_smoothing / c if label_smoothing else target
        wshape = [c if d == class_dim else 1 for d in range(input.ndim)]
        terms = logp * p if weight is None else logp * p * weight.reshape(wshape)
        losses = -terms.sum(class_dim)
        return _reduce(losses, reduction)
    nll = _nll("cross_entropy", logp, target, weight, ignore_index, reduction)
    if not label_smoothing:
        return nll
    # smoothing term: -sum_c w_c log p_c per sample, zero where ignored, reduced like the nll
    lp, y = _class_last(logp, target, "cross_entropy")
    keep = Tensor(y.data != ignore_index)
    w = None if weight is None else weight.data.astype(lp.dtype)
    smooth = -(lp if w is None else lp * Tensor(w)).sum(1) * keep
    if reduction == "mean":
        denom = keep.data.sum() if w is None else (w[array_module(w).where(keep.data, y.data, 0)] * keep.data).sum()
        smooth = _weighted_mean(smooth.sum(), denom)
    else:
        smooth = _reduce(smooth.reshape(target.shape), reduction)
    return nll * (1 - label_smoothing) + smooth * (label_smoothing / c)


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                     size_average: bool | None = None, reduce: bool | None = None,
                                     reduction: str = "mean", pos_weight: Tensor | None = None) -> Tensor:
    """-[p y log sigma(x) + (1 - y) log(1 - sigma(x))] with p = pos_weight, computed as
    (1 - y) x + (1 + (p - 1) y) softplus(-x), since -log sigma(x) = softplus(-x).

    ``input`` and ``target`` (float, in [0, 1]) have the same shape; ``weight`` and
    ``pos_weight`` broadcast against it (``pos_weight`` along the last, class, dim).
    Gradient w.r.t. the logits: (1 + (p - 1) y) sigma(x) - p y, times weight.
    """
    reduction = legacy_reduction("binary_cross_entropy_with_logits", size_average, reduce, reduction)
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    check_floating("binary_cross_entropy_with_logits", "input", input)
    check_tensor("binary_cross_entropy_with_logits", "target", target)
    if input.shape != target.shape:
        raise ValueError(f"binary_cross_entropy_with_logits: target shape {target.shape} must "
                         f"equal input shape {input.shape}")
    if target.dtype.kind != "f":
        raise TypeError(f"binary_cross_entropy_with_logits: target must be a float tensor of "
                        f"probabilities, got dtype {target.dtype}")
    # softplus computes max(z, 0) + log1p(e^-|z|) (never overflows) and its backward is
    # sigmoid(z) everywhere; no threshold, so that large |x| keeps full precision
    softplus_neg = A.softplus(-input, threshold=float("inf"))
    scale = 1 if pos_weight is None else 1 + (pos_weight - 1) * target
    loss = (1 - target) * input + scale * softplus_neg
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def _check_pair(op: str, input: Tensor, target: Tensor, reduction: str) -> None:
    """The regression losses: same shapes (no silent broadcasting) and a known reduction."""
    _check_reduction(op, reduction)
    check_floating(op, "input", input)
    check_tensor(op, "target", target)
    if input.shape != target.shape:
        raise ValueError(f"{op}: input shape {input.shape} and target shape {target.shape} differ")


def _weighted(loss: Tensor, weight: Tensor | None, reduction: str, op: str | None = None,
              mean_over_weights: bool = False) -> Tensor:
    """Elementwise loss times an optional ``weight``, then reduced. The regression losses
    (``op`` given) take a weight of the input's shape only, as torch 2.6+; torch's weighted
    mse_loss and l1_loss divide by sum(weight) for 'mean' (``mean_over_weights``), its
    huber_loss by the number of elements."""
    if weight is None:
        return _reduce(loss, reduction)
    if op is not None and weight.shape != loss.shape:
        raise ValueError(f"{op}: weight of shape {weight.shape} must have the input's shape {loss.shape}")
    if reduction == "mean" and mean_over_weights:
        return (loss * weight).sum() / weight.sum()
    return _reduce(loss * weight, reduction)


def mse_loss(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
             reduction: str = "mean", weight: Tensor | None = None) -> Tensor:
    """(x - y)^2."""
    reduction = legacy_reduction("mse_loss", size_average, reduce, reduction)
    _check_pair("mse_loss", input, target, reduction)
    d = input - target
    return _weighted(d * d, weight, reduction, "mse_loss", mean_over_weights=True)


def l1_loss(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
            reduction: str = "mean", weight: Tensor | None = None) -> Tensor:
    """|x - y|."""
    reduction = legacy_reduction("l1_loss", size_average, reduce, reduction)
    _check_pair("l1_loss", input, target, reduction)
    return _weighted(E.abs(input - target), weight, reduction, "l1_loss", mean_over_weights=True)


def smooth_l1_loss(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
                   reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (Huber, scaled by 1/beta).
    The gradient is d / beta inside and sign(d) outside: bounded, so one outlier cannot
    dominate a box-regression batch the way it would with the squared error."""
    reduction = legacy_reduction("smooth_l1_loss", size_average, reduce, reduction)
    _check_pair("smooth_l1_loss", input, target, reduction)
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be >= 0, got {beta}")
    d = E.abs(input - target)
    if beta == 0:
        return _reduce(d, reduction)
    loss = E.where(d < beta, d * d * (0.5 / beta), d - 0.5 * beta)
    return _reduce(loss, reduction)


def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0,
               weight: Tensor | None = None) -> Tensor:
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta): smooth_l1_loss times delta
    (quadratic near 0, linear with slope delta in the tails)."""
    _check_pair("huber_loss", input, target, reduction)
    if delta <= 0:
        raise ValueError(f"huber_loss: delta must be > 0, got {delta}")
    d = E.abs(input - target)
    loss = E.where(d < delta, d * d * 0.5, (d - 0.5 * delta) * delta)
    return _weighted(loss, weight, reduction, "huber_loss")


_BCE_EPS = float(np.float32(1e-12))  # torch's constant is a float 1e-12, also in float64


class BinaryCrossEntropy(Function):
    """Elementwise -[y log p + (1 - y) log(1 - p)], each log clamped to >= -100 (torch).

    dL/dp = (p - y) / (p (1 - p)), its denominator clamped to >= 1e-12 (so p = 0 or 1 gives a
    huge but finite slope, as torch); dL/dy = log(1 - p) - log p (unclamped, as torch)."""

    @staticmethod
    def forward(ctx: Context, p, y):
        xp = array_module(p)
        with np.errstate(divide="ignore"):
            log_p, log_1mp = xp.log(p), xp.log1p(-p)
        ctx.save_for_backward(p, y, log_p, log_1mp)
        return -(y * xp.maximum(log_p, -100) + (1 - y) * xp.maximum(log_1mp, -100))

    @staticmethod
    def backward(ctx: Context, grad):
        p, y, log_p, log_1mp = ctx.saved_tensors
        xp = array_module(p)
        dp = grad * (p - y) / xp.maximum(p * (1 - p), _BCE_EPS) if ctx.needs_input_grad[0] else None
        dy = grad * (log_1mp - log_p) if ctx.needs_input_grad[1] else None
        return dp, dy


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                         size_average: bool | None = None, reduce: bool | None = None,
                         reduction: str = "mean") -> Tensor:
    """-w [y log p + (1 - y) log(1 - p)] on probabilities ``input`` in [0, 1].

    Each log is clamped to >= -100, as torch, so p = 0 or 1 gives a large finite loss instead
    of inf. Prefer ``binary_cross_entropy_with_logits``: it never forms p, so it cannot lose
    precision near 0 and 1. dL/dp = w (p - y) / (p (1 - p)) where the logs are not clamped.
    """
    reduction = legacy_reduction("binary_cross_entropy", size_average, reduce, reduction)
    op = "binary_cross_entropy"
    _check_pair(op, input, target, reduction)
    if weight is not None:
        try:
            np.broadcast_shapes(weight.shape, input.shape)
        except ValueError:
            raise ValueError(f"{op}: weight of shape {weight.shape} does not broadcast to input shape "
                             f"{input.shape}") from None
    p = input.data
    if p.size and (bool((p < 0).any()) or bool((p > 1).any())):
        raise ValueError(f"{op}: all elements of input should be between 0 and 1 (probabilities; use "
                         f"binary_cross_entropy_with_logits for logits), got values in "
                         f"[{float(p.min()):g}, {float(p.max()):g}]")
    return _weighted(BinaryCrossEntropy.apply(input, target), weight, reduction)


def kl_div(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
           reduction: str = "mean", log_target: bool = False) -> Tensor:
    """KL(target || q) pointwise, with ``input`` = log q (log-probabilities, as torch):

        target * (log target - input)             (0 where target = 0: 0 log 0 = 0)
        exp(target) * (target - input)            with ``log_target=True``

    reduction 'batchmean' divides the sum by the batch size input.shape[0] (the true KL
    divergence per sample); 'mean' divides by every element, as torch (which warns: that is
    rarely what one wants), 'sum' and 'none' as usual. Gradients: d/dinput = -target (or
    -exp(target)); d/dtarget = log target + 1 - input, where target > 0. At target = 0 that
    is -inf in torch (the derivative of 0 log 0); here it is -input (the branch 0 log 0 = 0).
    """
    reduction = legacy_reduction("kl_div", size_average, reduce, reduction)
    op = "kl_div"
    if reduction not in _REDUCTIONS + ("batchmean",):
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS + ('batchmean',)}, got {reduction!r}")
    try:
        np.broadcast_shapes(input.shape, target.shape)
    except ValueError:
        raise ValueError(f"{op}: input shape {input.shape} and target shape {target.shape} do not broadcast") from None
    if log_target:
        loss = E.exp(target) * (target - input)
    else:
        positive = target > 0
        safe_log = E.log(E.where(positive, target, 1.0))  # log 1 = 0 where target = 0: 0 log 0 = 0
        loss = E.where(positive, target * (safe_log - input), -(target * input))
    if reduction == "batchmean":
        total = loss.sum()
        return total / loss.shape[0] if loss.ndim else total
    if reduction == "mean":
        warnings.warn("kl_div: reduction='mean' divides the total loss by both the batch size and the "
                      "support size; 'batchmean' divides only by the batch size and matches the math "
                      "definition of KL divergence", UserWarning, stacklevel=2)
    return _reduce(loss, reduction)


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """Class indices (any shape, integer) -> int64 one-hot codes, shape (*tensor.shape, num_classes).
    ``num_classes=-1`` takes max(tensor) + 1. Not differentiable (integer output)."""
    op = "one_hot"
    y = tensor.data if isinstance(tensor, Tensor) else np.asarray(tensor)
    xp = array_module(y)
    if y.dtype.kind not in "iu":
        raise TypeError(f"{op}: tensor must hold integer class indices (int64), got dtype {y.dtype}")
    if y.size and int(y.min()) < 0:
        raise ValueError(f"{op}: class values must be non-negative, got {int(y.min())}")
    if num_classes == -1:
        if not y.size:
            raise ValueError(f"{op}: cannot infer num_classes from an empty tensor (shape {y.shape}); pass it")
        num_classes = int(y.max()) + 1
    if y.size and int(y.max()) >= num_classes:
        raise ValueError(f"{op}: class values must be smaller than num_classes ({num_classes}), got "
                         f"{int(y.max())} (tensor of shape {y.shape})")
    return Tensor((y[..., None] == xp.arange(num_classes)).astype(np.int64))


def cosine_embedding_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0,
                          size_average: bool | None = None, reduce: bool | None = None,
                          reduction: str = "mean") -> Tensor:
    """1 - cos(x1, x2) where target = 1, max(0, cos(x1, x2) - margin) where target = -1.

    cos is taken over the last dim as torch writes it: sum(x1 x2) / sqrt((|x1|^2 + 1e-12)(|x2|^2 + 1e-12)).
    input1, input2 (N, D) or (D,); target (N,) or () of +1 / -1.
    """
    reduction = legacy_reduction("cosine_embedding_loss", size_average, reduce, reduction)
    op = "cosine_embedding_loss"
    _check_reduction(op, reduction)
    if input1.shape != input2.shape or input1.ndim not in (1, 2) or target.shape != input1.shape[:-1]:
        raise ValueError(f"{op}: input1 and input2 must both be (N, D) (or (D,)) with target (N,) (or ()), "
                         f"got {input1.shape}, {input2.shape} and target {target.shape}")
    eps = 1e-12
    dot = (input1 * input2).sum(-1)
    mag = ((input1 * input1).sum(-1) + eps) * ((input2 * input2).sum(-1) + eps)
    cos = dot / E.sqrt(mag)
    pos = E.where(target == 1, 1 - cos, 0.0)
    neg = E.where(target == -1, E.clamp(cos - margin, min=0.0), 0.0)
    return _reduce(pos + neg, reduction)


def triplet_margin_loss(anchor: Tensor, positive: Tensor, negative: Tensor, margin: float = 1.0, p: float = 2,
                        eps: float = 1e-6, swap: bool = False, size_average: bool | None = None,
                        reduce: bool | None = None, reduction: str = "mean") -> Tensor:
    """max(d(a, p) - d(a, n) + margin, 0) with d = pairwise_distance (p-norm of a - b + eps).
    ``swap`` uses min(d(a, n), d(p, n)) as the negative distance (Balntas et al. 2016).
    anchor, positive, negative (N, D) or (D,)."""
    reduction = legacy_reduction("triplet_margin_loss", size_average, reduce, reduction)
    op = "triplet_margin_loss"
    _check_reduction(op, reduction)
    if not (anchor.ndim == positive.ndim == negative.ndim) or anchor.ndim not in (1, 2):
        raise ValueError(f"{op}: anchor, positive and negative must all be (N, D) (or all (D,)), got "
                         f"{anchor.shape}, {positive.shape} and {negative.shape}")
    if margin <= 0:
        raise ValueError(f"{op}: margin must be greater than 0, got {margin}")
    d_ap = pairwise_distance(anchor, positive, p, eps)
    d_an = pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_an = E.minimum(d_an, pairwise_distance(positive, negative, p, eps))
    return _reduce(E.clamp(d_ap - d_an + margin, min=0.0), reduction)
