"""Losses, taken on logits where PyTorch takes them on logits.

Why ``cross_entropy`` takes logits: it is ``-log softmax(x)[y]``, and ``log_softmax`` is
computed as ``x - logsumexp(x)`` (stable for any logits), never as ``log(softmax(x))``, which
underflows to ``log(0) = -inf`` for a confident wrong class. Its gradient is then simply
``softmax(x) - onehot(y)`` per sample.
"""
from __future__ import annotations

from typing import Any

from tinyvision.autograd.tensor import Tensor
from tinyvision.functional import activation as A
from tinyvision.functional import elementwise as E
from tinyvision.functional import reduction as R
from tinyvision.functional._util import check_floating, check_tensor
from tinyvision.functional.indexing import gather
from tinyvision.functional.shape import movedim
from tinyvision.kernels.compat import array_module

_REDUCTIONS = ("mean", "sum", "none")


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


def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None,
             ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities ``input`` (N, C[, d...]) at class
    indices ``target`` (N[, d...]): loss_i = -w[y_i] * input[i, y_i]. 'mean' divides by the
    summed weights of the targets that are not ``ignore_index``, as PyTorch."""
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


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                  ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy on logits ``input`` (N, C[, d...]) or (C,).

    ``target`` holds class indices (N[, d...]) or class probabilities (same shape as input).
    With ``label_smoothing`` eps the target becomes (1 - eps) * target + eps / C.
    Gradient w.r.t. the logits (unweighted, no smoothing): softmax(x) - onehot(y), / N for 'mean'.
    """
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
                                     reduction: str = "mean", pos_weight: Tensor | None = None) -> Tensor:
    """-[p y log sigma(x) + (1 - y) log(1 - sigma(x))] with p = pos_weight, computed as
    (1 - y) x + (1 + (p - 1) y) softplus(-x), since -log sigma(x) = softplus(-x).

    ``input`` and ``target`` (float, in [0, 1]) have the same shape; ``weight`` and
    ``pos_weight`` broadcast against it (``pos_weight`` along the last, class, dim).
    Gradient w.r.t. the logits: (1 + (p - 1) y) sigma(x) - p y, times weight.
    """
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


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """(x - y)^2."""
    _check_pair("mse_loss", input, target, reduction)
    d = input - target
    return _reduce(d * d, reduction)


def l1_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """|x - y|."""
    _check_pair("l1_loss", input, target, reduction)
    return _reduce(E.abs(input - target), reduction)


def smooth_l1_loss(input: Tensor, target: Tensor, reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (Huber, scaled by 1/beta)."""
    _check_pair("smooth_l1_loss", input, target, reduction)
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be >= 0, got {beta}")
    d = E.abs(input - target)
    if beta == 0:
        return _reduce(d, reduction)
    loss = E.where(d < beta, d * d * (0.5 / beta), d - 0.5 * beta)
    return _reduce(loss, reduction)

