"""Dropout: ``dropout`` (each element) and ``dropout1d/2d/3d`` (whole channels), as torch.

Inverted dropout: while training, each unit is kept with probability 1 - p and scaled by
1 / (1 - p), so the expected output equals the input and evaluation needs no rescaling.
The op is a multiplication by a random mask m (0 or 1/(1-p)), so dL/dx = m * dL/dy: the
backward of ``input * mask`` already does it, and no Function of its own is needed.

The channel forms draw one mask entry per (sample, channel) and broadcast it over the
spatial dims: neighbouring pixels of a feature map are strongly correlated, so dropping
single pixels barely regularises a conv net, while dropping whole maps does (Tompson et al.).
"""
from __future__ import annotations

import warnings

import numpy as np

from tinyvision.autograd.tensor import Tensor
from tinyvision.functional._util import check_floating


def _check_p(op: str, p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: p must be in [0, 1], got {p}")


def _masked(input: Tensor, p: float, mask_shape: tuple[int, ...]) -> Tensor:
    """input * (mask / (1 - p)) with mask ~ Bernoulli(1 - p) of ``mask_shape`` (broadcast)."""
    if p == 1.0:
        return input * 0.0
    from tinyvision.random import rand_array  # the seeded generator (manual_seed)

    keep = rand_array(mask_shape, input.device) >= p
    return input * Tensor(keep.astype(input.dtype) / np.asarray(1 - p, dtype=input.dtype))


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p). ``inplace`` is
    accepted for torch's signature; a new tensor is returned either way."""
    check_floating("dropout", "input", input)
    _check_p("dropout", p)
    if not training or p == 0.0:
        return input
    return _masked(input, p, input.shape)


def _feature_dropout(op: str, input: Tensor, p: float, training: bool, spatial: int) -> Tensor:
    """Zero whole channels: input (N, C, *spatial) or (C, *spatial) (unbatched)."""
    check_floating(op, "input", input)
    _check_p(op, p)
    if input.ndim not in (spatial + 1, spatial + 2):
        raise ValueError(f"{op}: input must be (N, C, {spatial} spatial dims) or (C, {spatial} spatial "
                         f"dims), got shape {input.shape}")
    if not training or p == 0.0:
        return input
    channels = input.ndim - spatial  # 1 (C) or 2 (N, C) leading dims get their own mask entry
    return _masked(input, p, input.shape[:channels] + (1,) * spatial)


def dropout1d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels of (N, C, L) or (C, L) input with probability p, scale by 1/(1-p)."""
    return _feature_dropout("dropout1d", input, p, training, 1)


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels of (N, C, H, W) or (C, H, W) input with probability p.

    A 3-D input is read as torch 2.x reads it: (N, C, L), i.e. channel-wise 1-D dropout, with
    torch's warning (so ``dropout2d`` on (C, H, W) drops rows of one channel, not channels)."""
    if input.ndim == 3:
        warnings.warn("dropout2d: received a 3-D input; as torch, it is read as (N, C, L) and "
                      "whole (n, c) rows are dropped. Use dropout1d for that, or give (N, C, H, W).",
                      stacklevel=2)
        return _feature_dropout("dropout2d", input, p, training, 1)
    return _feature_dropout("dropout2d", input, p, training, 2)


def dropout3d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels of (N, C, D, H, W) or (C, D, H, W) input with probability p."""
    return _feature_dropout("dropout3d", input, p, training, 3)
