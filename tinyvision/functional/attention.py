"""Scaled dot-product attention, as ``torch.nn.functional.scaled_dot_product_attention``.

Each query row asks "which keys look like me?": the scores q . k / sqrt(E) go through a
softmax over the keys, and the output is the probability-weighted mean of the values. The
compute lives in ``tinyvision.kernels.{reference,cpu,gpu}.attention``; this module checks
shapes, turns masks into an additive bias, draws the dropout mask, and holds the autograd glue.
"""
from __future__ import annotations

import math
import numpy as np

from tinyvision.autograd.function import Context, Function
from tinyvision.autograd.tensor import Tensor
from tinyvision.kernels.compat import array_module
from tinyvision.kernels.dispatch import kernel


class Attention(Function):
    """out = dropout(softmax(scale * q k^T + bias)) v, forward and backward in the kernels.

    ``bias`` is an additive float mask (a Tensor, which may require grad: its gradient is
    dL/dscores summed to its shape) or a raw array built from a boolean mask, or None.
    ``dropout`` is None or the keep / (1 - p) multiplier array, drawn by the caller.
    """

    @staticmethod
    def forward(ctx: Context, q, k, v, bias, scale, is_causal, dropout):
        out, probs = kernel("attention", "attention_forward", q)(q, k, v, bias, scale, is_causal, dropout)
        ctx.save_for_backward(q, k, v, probs, dropout)
        ctx.scale = scale
        return out

    @staticmethod
    def backward(ctx: Context, grad):
        q, k, v, probs, dropout = ctx.saved_tensors
        dq, dk, dv, dscores = kernel("attention", "attention_backward", grad)(grad, q, k, v, probs,
                                                                             ctx.scale, dropout)
        return dq, dk, dv, dscores, None, None, None


def _shape_error(msg: str, query: Tensor, key: Tensor, value: Tensor) -> ValueError:
    return ValueError(f"scaled_dot_product_attention: {msg}; got query {query.shape}, key {key.shape}, "
                      f"value {value.shape}")


def _share_heads(query: Tensor, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
    """key and value (..., Hkv, S, E) -> (..., Hq, S, E), each head repeated Hq / Hkv times in
    a row (head h of the query reads kv head h // (Hq / Hkv)). An expand and a reshape: the
    backward of expand sums the gradients of the copies."""
    if min(query.ndim, key.ndim, value.ndim) < 3:
        raise _shape_error("enable_gqa needs a heads dim (-3) in query, key and value", query, key, value)
    hq, hk, hv = query.shape[-3], key.shape[-3], value.shape[-3]
    if hk != hv or hq % hk:
        raise _shape_error(f"enable_gqa needs key and value to share their number of heads (dim -3), and "
                           f"the query's heads ({hq}) to be a multiple of it", query, key, value)
    group = hq // hk

    def repeat(t: Tensor) -> Tensor:
        lead = t.shape[:-3]
        expanded = t.unsqueeze(-3).expand(lead + (hk, group) + t.shape[-2:])
        return expanded.reshape(lead + (hk * group,) + t.shape[-2:])
    return (repeat(key), repeat(value)) if group > 1 else (key, value)


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None,
                                 dropout_p: float = 0.0, is_causal: bool = False,
                                 scale: float | None = None, enable_gqa: bool = False) -> Tensor:
    """softmax(query @ key^T * scale + mask) @ value, PyTorch's arguments and semantics.

    query (..., L, E), key (..., S, E), value (..., S, Ev) -> (..., L, Ev); the batch dims
    ``...`` broadcast. ``scale`` defaults to 1 / sqrt(E).

    ``attn_mask`` broadcasts to (..., L, S): boolean (True = may attend, as torch) or float
    (added to the scores; -inf blocks; its gradient is computed if it requires grad).
    ``is_causal``: query i attends to keys j <= i only (cannot be combined with a mask).
    ``dropout_p`` > 0 zeroes attention weights with probability p and scales the rest by
    1 / (1 - p), drawing from ``tinyvision.random`` (seed with ``tinyvision.manual_seed``).
    As torch, dropout is applied whenever ``dropout_p`` > 0: pass 0.0 in eval mode.

    ``enable_gqa``: grouped-query attention (Ainslie et al. 2023). query (..., Hq, L, E) and
    key/value (..., Hkv, S, E) with Hq a multiple of Hkv: each key/value head serves
    Hq / Hkv consecutive query heads (torch's repeat_interleave along dim -3), so the
    key/value cache is Hq / Hkv times smaller. The gradient of a shared head sums over the
    query heads it served.

    A query row whose keys are all masked has no softmax; here its output row is 0 and
    no gradient flows through it (torch's math backend would give NaN).
    """
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor) or t.ndim < 2 or t.dtype.kind != "f":
            raise TypeError(f"scaled_dot_product_attention: {name} must be a float Tensor of at least 2 dims, "
                            f"got {getattr(t, 'shape', type(t).__name__)}")
    if len({query.dtype, key.dtype, value.dtype}) != 1 or query.dtype not in (np.float32, np.float64):
        raise TypeError("scaled_dot_product_attention: query, key and value must share one dtype, float32 or "
                        f"float64 (the kernels' two), got {query.dtype}, {key.dtype}, {value.dtype}")
    if len({query.device, key.device, value.device}) != 1:
        raise ValueError(f"scaled_dot_product_attention: query, key and value must be on one device, got "
                         f"{query.device}, {key.device}, {value.device}")
    if enable_gqa:
        key, value = _share_heads(query, key, value)
    if query.shape[-1] != key.shape[-1]:
        raise _shape_error("query and key must have the same last dim E", query, key, value)
    if key.shape[-2] != value.shape[-2]:
        raise _shape_error("key and value must have the same sequence length S (dim -2)", query, key, value)
    if min(query.shape[-2], key.shape[-2], query.shape[-1]) < 1:
        raise _shape_error("L, S and E must be >= 1", query, key, value)
    try:
        batch = np.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    except ValueError:
        raise _shape_error("the batch dims (all but the last two) do not broadcast", query, key, value) from None
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"scaled_dot_product_attention: dropout_p must be in [0, 1], got {dropout_p}")
    L, S = query.shape[-2], key.shape[-2]
    scores_shape = batch + (L, S)
    bias = None
    if attn_mask is not None:
        attn_mask = attn_mask if isinstance(attn_mask, Tensor) else Tensor(attn_mask)
        if is_causal:
            raise ValueError("scaled_dot_product_attention: pass attn_mask or is_causal=True, not both (as torch)")
        try:
            scores_shape = np.broadcast_shapes(scores_shape, attn_mask.shape)
        except ValueError:
            raise ValueError(f"scaled_dot_product_attention: attn_mask of shape {attn_mask.shape} does not "
                             f"broadcast to the scores' shape {scores_shape} (..., L, S)") from None
        if attn_mask.dtype == np.bool_:  # True = attend -> bias 0; False -> -inf
            xp = array_module(attn_mask.data)
            bias = xp.where(attn_mask.data, 0.0, -np.inf).astype(query.dtype)
        elif attn_mask.dtype.kind == "f":
            bias = attn_mask
        else:
            raise TypeError(f"scaled_dot_product_attention: attn_mask must be bool or float, got {attn_mask.dtype}")
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    dropout = None
    if dropout_p > 0.0:
        from tinyvision.random import rand_array

        keep = rand_array(scores_shape, query.device) >= dropout_p
        dropout = keep.astype(query.dtype) / query.dtype.type(1.0 - dropout_p) if dropout_p < 1.0 \
            else keep.astype(query.dtype)  # p = 1: every weight dropped, output 0
    return Attention.apply(query, key, value, bias, scale, bool(is_causal), dropout)
