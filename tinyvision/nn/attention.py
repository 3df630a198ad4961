"""``MultiheadAttention`` with PyTorch's parameter layout, so its weights load unchanged.

Parameters (E = embed_dim):

    in_proj_weight (3E, E)   rows [W_q; W_k; W_v], heads contiguous inside each block
    in_proj_bias   (3E,)     [b_q; b_k; b_v]
    out_proj.weight (E, E), out_proj.bias (E,)

Per head h (head_dim d = E / num_heads):  A_h = softmax(Q_h K_h^T / sqrt(d) + mask),
out = concat_h(A_h V_h) W_o^T + b_o.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinyvision import functional as F
from tinyvision.autograd.tensor import Tensor
from tinyvision.kernels import compat
from tinyvision.nn import init
from tinyvision.nn.linear import Linear
from tinyvision.nn.module import Module, empty_parameter


def _additive(mask: Any, dtype: Any):
    """A mask as an additive float array: a bool True (= may not attend) becomes -inf, a
    float mask is added as it is."""
    m = mask.data if isinstance(mask, Tensor) else mask
    xp = compat.array_module(m)
    m = xp.asarray(m)
    if m.dtype == np.bool_:
        return xp.where(m, -np.inf, 0.0).astype(dtype)
    return m.astype(dtype, copy=False)


class MultiheadAttention(Module):
    """Multi-head attention (Vaswani et al. 2017), PyTorch's ``nn.MultiheadAttention``.

    Shapes: query (L, N, E), key/value (S, N, E) -- or (N, L, E)/(N, S, E) with
    ``batch_first=True``, or (L, E)/(S, E) unbatched. ``forward`` returns
    ``(output, weights)``: output like query; weights (N, L, S) averaged over heads, or
    (N, num_heads, L, S) with ``average_attn_weights=False``, or None when
    ``need_weights=False`` (which takes the fused ``F.scaled_dot_product_attention`` path).

    Masks: ``attn_mask`` (L, S) or (N * num_heads, L, S); ``key_padding_mask`` (N, S). A bool
    True means "may not attend"; a float mask is added to the scores. ``is_causal=True``
    without ``attn_mask`` masks the future (j > i).

    Not implemented (NotImplementedError): kdim/vdim different from embed_dim, add_bias_kv,
    add_zero_attn.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: int | None = None,
                 vdim: int | None = None, batch_first: bool = False, device: str | None = None,
                 dtype: Any = None) -> None:
        super().__init__()
        if num_heads <= 0 or embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible by "
                             f"num_heads ({num_heads})")
        if kdim not in (None, embed_dim) or vdim not in (None, embed_dim) or add_bias_kv or add_zero_attn:
            raise NotImplementedError("MultiheadAttention: kdim/vdim != embed_dim, add_bias_kv and "
                                      "add_zero_attn are not implemented")
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.head_dim, self.batch_first = embed_dim // num_heads, batch_first
        self.in_proj_weight = empty_parameter((3 * embed_dim, embed_dim), dtype, device)
        self.in_proj_bias = empty_parameter((3 * embed_dim,), dtype, device) if bias else None
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, device=device, dtype=dtype)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """PyTorch's: Xavier-uniform on the packed (3E, E) matrix, zero biases; out_proj.weight
        keeps Linear's default init."""
        init.xavier_uniform_(self.in_proj_weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def _project(self, x: Tensor, i: int) -> Tensor:
        """Block i (0 = q, 1 = k, 2 = v) of the packed projection, split into heads:
        (N, T, E) -> (N, num_heads, T, head_dim)."""
        E = self.embed_dim
        b = None if self.in_proj_bias is None else self.in_proj_bias[i * E:(i + 1) * E]
        y = F.linear(x, self.in_proj_weight[i * E:(i + 1) * E], b)
        return y.reshape(x.shape[0], x.shape[1], self.num_heads, self.head_dim).transpose(1, 2)

    def _mask(self, attn_mask: Any, key_padding_mask: Any, is_causal: bool, n: int, l: int, s: int,
              dtype: Any, device: str):
        """attn_mask and key_padding_mask merged into one additive array that broadcasts
        against the (N, num_heads, L, S) scores, or None."""
        mask = None
        if attn_mask is None and is_causal:
            attn_mask = compat.to_device(np.triu(np.ones((l, s), dtype=bool), k=1), device)
        if attn_mask is not None:
            m = _additive(attn_mask, dtype)
            if m.shape == (l, s):
                mask = m
            elif m.shape == (n * self.num_heads, l, s):
                mask = m.reshape(n, self.num_heads, l, s)
            else:
                raise ValueError(f"MultiheadAttention: attn_mask has shape {tuple(m.shape)}, expected "
                                 f"(L, S) = {(l, s)} or (N * num_heads, L, S) = {(n * self.num_heads, l, s)}")
        if key_padding_mask is not None:
            k = _additive(key_padding_mask, dtype)
            if k.shape != (n, s):
                raise ValueError(f"MultiheadAttention: key_padding_mask has shape {tuple(k.shape)}, "
                                 f"expected (N, S) = {(n, s)}")
            k = k.reshape(n, 1, 1, s)
            mask = k if mask is None else mask + k
        return mask

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Any = None,
                need_weights: bool = True, attn_mask: Any = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[Tensor, Tensor | None]:
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise ValueError(f"MultiheadAttention: query, key, value must all be 3-D (or all 2-D, "
                             f"unbatched), got shapes {query.shape}, {key.shape}, {value.shape}")
        batched = query.ndim == 3
        if not batched:  # (L, E) -> (1, L, E), batch first
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
            if key_padding_mask is not None:
                key_padding_mask = (key_padding_mask.data if isinstance(key_padding_mask, Tensor)
                                    else key_padding_mask)[None]
        elif not self.batch_first:  # (L, N, E) -> (N, L, E)
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        n, l, e = query.shape
        s = key.shape[1]
        if e != self.embed_dim or key.shape[2] != e or value.shape[:2] != key.shape[:2] or key.shape[0] != n:
            raise ValueError(f"MultiheadAttention(embed_dim={self.embed_dim}): got query {query.shape}, "
                             f"key {key.shape}, value {value.shape} (batch-first view); they must share "
                             f"N and E = embed_dim, and key and value the length S")
        q, k, v = self._project(query, 0), self._project(key, 1), self._project(value, 2)
        mask = self._mask(attn_mask, key_padding_mask, is_causal, n, l, s, query.dtype, query.device)
        p = self.dropout if self.training else 0.0
        weights = None
        if need_weights:  # the explicit path, which keeps the attention matrix
            scores = (q * (1.0 / math.sqrt(self.head_dim))) @ k.mT
            if mask is not None:
                scores = scores + Tensor(mask)
            weights = F.softmax(scores, -1)
            out = F.dropout(weights, p, True) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=None if mask is None else Tensor(mask),
                                                 dropout_p=p)
        out = self.out_proj(out.transpose(1, 2).reshape(n, l, e))
        if weights is not None and average_attn_weights:
            weights = weights.mean(1)
        if not batched:
            return out.squeeze(0), None if weights is None else weights.squeeze(0)
        return (out if self.batch_first else out.transpose(0, 1)), weights
