"""Sigmoid focal loss (RetinaNet, Lin et al. 2017) with torchvision.ops's signature.

A one-stage detector scores ~100k anchors per image, almost all easy background. Plain binary
cross-entropy lets those many small losses swamp the few objects. The focal loss scales the
cross-entropy of each prediction by ``(1 - p_t)^gamma``, where ``p_t`` is the probability given to
the true answer: an easy example (p_t -> 1) contributes almost nothing, a hard one keeps its
loss. ``alpha`` weighs positives against negatives on top (0.25 for the positives in the paper,
which, with gamma = 2, works best because the focusing term already favours the rare positives):

    p = sigmoid(x),  p_t = p * t + (1 - p) * (1 - t),  alpha_t = alpha * t + (1 - alpha) * (1 - t)
    FL = alpha_t * (1 - p_t)^gamma * BCE(x, t)
"""
from __future__ import annotations

from tinyvision import functional as F
from tinyvision.autograd.tensor import Tensor
from tinyvision.ops._checks import check_tensor

REDUCTIONS = ("none", "mean", "sum")


def reduce(op: str, loss: Tensor, reduction: str) -> Tensor:
    """'none' keeps every element, 'mean' averages (0 with a gradient path for no elements),
    'sum' adds them up."""
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean() if loss.numel() > 0 else 0.0 * loss.sum()
    raise ValueError(f"{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def sigmoid_focal_loss(inputs: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2,
                       reduction: str = "none") -> Tensor:
    """Focal loss of logits ``inputs`` against binary (or soft) ``targets`` of the same shape;
    ``alpha = -1`` turns the class weighting off. Returns the elementwise loss, or its mean/sum."""
    op = "sigmoid_focal_loss"
    check_tensor(op, "inputs", inputs)
    check_tensor(op, "targets", targets)
    if not (0 <= alpha <= 1) and alpha != -1:
        raise ValueError(f"{op}: alpha must be in [0, 1], or -1 to turn it off, got {alpha}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if tuple(inputs.shape) != tuple(targets.shape):
        raise ValueError(f"{op}: inputs {tuple(inputs.shape)} and targets {tuple(targets.shape)} must have the same shape")
    p = F.sigmoid(inputs)
    ce = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return reduce(op, loss, reduction)
