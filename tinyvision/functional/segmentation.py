"""Losses for dense prediction on logits (N, C, *spatial) and class maps (N, *spatial).

Per-pixel cross-entropy (``cross_entropy``, with ``weight`` and ``ignore_index``) counts pixels:
a class that covers 2% of the image gets 2% of the say. Two losses weigh classes differently:

- soft Dice (Milletari et al. 2016, V-Net): Dice = 2|A n B| / (|A| + |B|) is an overlap score per
  class, whatever the class's size; with the softmax probabilities p in place of the predicted
  mask it is differentiable:
      dice_c = (2 sum_i p_ic y_ic + smooth) / (sum_i p_ic + sum_i y_ic + smooth),
      loss = 1 - mean_c dice_c,
  sums over every (non-ignored) pixel of the batch; ``smooth`` keeps an absent class at
  dice 1 (loss 0) instead of 0/0 and softens the gradient of tiny classes.
- focal (Lin et al. 2017) for C classes: FL = -alpha_t (1 - p_t)^gamma log p_t with p_t the
  probability of the true class: well-classified pixels (p_t -> 1) fade out, so the many easy
  background pixels stop drowning the hard ones; gamma = 0 is cross-entropy.

``dice_ce_loss`` adds them: lambda_ce * CE + lambda_dice * Dice + lambda_focal * focal.
All are compositions of differentiable ops, so autograd gives their gradients.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from tinyvision.autograd.tensor import Tensor
from tinyvision.functional import elementwise as E
from tinyvision.functional import reduction as R
from tinyvision.functional.loss import _check_reduction, _class_last, _weighted_mean, cross_entropy
from tinyvision.kernels.compat import array_module, to_numpy


def _probabilities_and_onehot(op: str, input: Tensor, target: Tensor, ignore_index: int | None,
                              log: bool) -> tuple[Tensor, Tensor, Tensor, np.ndarray]:
    """(M, C) [log-]softmax of the logits, (M, C) one-hot target, (M, 1) keep-mask (0 where the
    target is ignore_index), and the (M,) class indices (arrays of the logits' array module). Ignored pixels get class 0 (a finite
    stand-in, masked out by the caller: a zero one-hot row would make focal's (1 - p_t)^gamma
    meet 0^gamma, whose derivative is infinite for gamma < 1)."""
    if input.ndim < 2:
        raise ValueError(f"{op}: input must be (N, C, *spatial) logits, got shape {input.shape}")
    scores, y = _class_last(input, target, op)
    c = scores.shape[1]
    xp = array_module(scores.data)                       # NumPy or CuPy: the constants live with the scores
    labels = xp.asarray(y.data if isinstance(y, Tensor) else y).astype(xp.int64)
    keep = xp.ones(labels.shape, dtype=bool) if ignore_index is None else labels != ignore_index
    bad = keep & ((labels < 0) | (labels >= c))
    if bool(bad.any()):
        found = sorted(set(to_numpy(labels[bad]).tolist()))[:5]
        raise ValueError(f"{op}: target holds classes {found} outside [0, {c}) for input with {c} classes"
                         + (f" (ignore_index={ignore_index})" if ignore_index is not None else ""))
    labels = xp.where(keep, labels, 0)
    dtype = scores.dtype
    onehot = Tensor((xp.arange(c) == labels[:, None]).astype(dtype))
    probs = R.log_softmax(scores, 1) if log else R.softmax(scores, 1)
    return probs, onehot, Tensor(keep[:, None].astype(dtype)), labels


def dice_loss(input: Tensor, target: Tensor, smooth: float = 1.0, ignore_index: int | None = None,
              weight: Sequence[float] | Tensor | None = None) -> Tensor:
    """Multi-class soft Dice loss, 1 - mean_c dice_c (formula in the module docstring): a scalar.

    input (N, C, *spatial) logits; target (N, *spatial) class indices; pixels whose target is
    ``ignore_index`` count for nothing; ``weight`` (C,) averages the classes' dice with weights.
    Gradient: through the softmax, d dice_c / d p_ic = (2 y_ic - dice_c) / (sum p_c + sum y_c + smooth).
    """
    if smooth < 0:
        raise ValueError(f"dice_loss: smooth must be >= 0, got {smooth}")
    p, y, keep, _ = _probabilities_and_onehot("dice_loss", input, target, ignore_index, log=False)
    p, y = p * keep, y * keep
    intersection = (p * y).sum(0)                         # (C,)
    cardinality = p.sum(0) + y.sum(0)
    dice = (2.0 * intersection + smooth) / (cardinality + smooth)
    if weight is None:
        return 1.0 - dice.mean()
    w = to_numpy(weight.data if isinstance(weight, Tensor) else np.asarray(weight)).astype(np.float64)
    if w.shape != (dice.shape[0],):
        raise ValueError(f"dice_loss: weight of shape {w.shape} must hold one weight per class, ({dice.shape[0]},)")
    xp = array_module(dice.data)
    return 1.0 - (dice * Tensor(xp.asarray((w / w.sum()).astype(dice.dtype)))).sum()


def focal_loss(input: Tensor, target: Tensor, gamma: float = 2.0, alpha: Sequence[float] | Tensor | None = None,
               ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """Multi-class focal loss -alpha_t (1 - p_t)^gamma log p_t per pixel.

    input (N, C, *spatial) logits; target (N, *spatial) class indices; ``alpha`` (C,) per-class
    weights (None: 1); ``reduction`` "mean" (over the non-ignored pixels, as cross_entropy),
    "sum" or "none" (N, *spatial, zero where ignored). gamma = 0, alpha None is cross_entropy.
    """
    _check_reduction("focal_loss", reduction)
    if gamma < 0:
        raise ValueError(f"focal_loss: gamma must be >= 0, got {gamma}")
    logp, y, keep, labels = _probabilities_and_onehot("focal_loss", input, target, ignore_index, log=True)
    logp_t = (logp * y).sum(1)                            # (M,) log-probability of the true class
    p_t = E.exp(logp_t)
    loss = -((1.0 - p_t) ** gamma) * logp_t if gamma else -logp_t
    if alpha is not None:
        a = to_numpy(alpha.data if isinstance(alpha, Tensor) else np.asarray(alpha)).astype(np.float64)
        if a.shape != (y.shape[1],):
            raise ValueError(f"focal_loss: alpha of shape {a.shape} must hold one weight per class, ({y.shape[1]},)")
        xp = array_module(logp.data)
        loss = loss * Tensor(xp.asarray(a.astype(logp.dtype))[labels])
    loss = loss * keep.reshape(-1)
    if reduction == "none":
        spatial = (input.shape[0],) + input.shape[2:]
        return loss.reshape(spatial)
    if reduction == "sum":
        return loss.sum()
    return _weighted_mean(loss.sum(), float(keep.data.sum()))


def dice_ce_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100,
                 smooth: float = 1.0, gamma: float = 2.0, lambda_ce: float = 1.0, lambda_dice: float = 1.0,
                 lambda_focal: float = 0.0) -> Tensor:
    """lambda_ce * cross_entropy(weight, ignore_index) + lambda_dice * dice_loss(smooth) +
    lambda_focal * focal_loss(gamma): per-pixel accuracy from CE, per-class overlap from Dice."""
    total = lambda_ce * cross_entropy(input, target, weight=weight, ignore_index=ignore_index)
    if lambda_dice:
        total = total + lambda_dice * dice_loss(input, target, smooth=smooth, ignore_index=ignore_index)
    if lambda_focal:
        total = total + lambda_focal * focal_loss(input, target, gamma=gamma, ignore_index=ignore_index)
    return total

