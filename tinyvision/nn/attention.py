"""``MultiheadAttention`` with PyTorch's parameter layout, so its weights load unchanged.

Parameters (E = embed_dim):

    in_proj_weight (3E, E)   rows [W_q; W_k; W_v], heads contiguous inside each block
                             -- or, when kdim or vdim differs from E, three matrices
                             q_proj_weight (E, E), k_proj_weight (E, kdim), v_proj_weight (E, vdim)
    in_proj_bias   (3E,)     [b_q; b_k; b_v]
    bias_k, bias_v (1, 1, E) with add_bias_kv: one learned key/value appended to every sequence
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
from tinyvision.creation import zeros
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

    ``kdim``/``vdim``: the feature sizes of key and value when they differ from E (cross-
    attention between two feature spaces). ``add_bias_kv`` appends the learned key/value
    (bias_k, bias_v) and ``add_zero_attn`` a zero key/value to every sequence (after the
    projection), so S grows by one for each and a query can attend to "nothing in
    particular"; the masks are padded with "may attend".
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: int | None = None,
                 vdim: int | None = None, batch_first: bool = False, device: str | None = None,
                 dtype: Any = None) -> None:
        super().__init__()
        if num_heads <= 0 or embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible by "
                             f"num_heads ({num_heads})")
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        self.head_dim, self.batch_first, self.add_zero_attn = embed_dim // num_heads, batch_first, add_zero_attn
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        if self._qkv_same_embed_dim:
            self.in_proj_weight = empty_parameter((3 * embed_dim, embed_dim), dtype, device)
        else:  # PyTorch's keys for this case
            self.q_proj_weight = empty_parameter((embed_dim, embed_dim), dtype, device)
            self.k_proj_weight = empty_parameter((embed_dim, self.kdim), dtype, device)
            self.v_proj_weight = empty_parameter((embed_dim, self.vdim), dtype, device)
        self.in_proj_bias = empty_parameter((3 * embed_dim,), dtype, device) if bias else None
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, device=device, dtype=dtype)
        if add_bias_kv:
            self.bias_k = empty_parameter((1, 1, embed_dim), dtype, device)
            self.bias_v = empty_parameter((1, 1, embed_dim), dtype, device)
        else:
            self.bias_k = self.bias_v = None
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """PyTorch's: Xavier-uniform on the packed (3E, E) matrix (or on each of the three),
        zero biases, Xavier-normal bias_k/bias_v; out_proj.weight keeps Linear's default init."""
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(w)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
            init.xavier_normal_(self.bias_v)

    def _project(self, x: Tensor, i: int) -> Tensor:
        """Projection i (0 = q, 1 = k, 2 = v): (N, T, E or kdim or vdim) -> (N, T, E)."""
        E = self.embed_dim
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight[i * E:(i + 1) * E]
        else:
            w = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)[i]
        b = None if self.in_proj_bias is None else self.in_proj_bias[i * E:(i + 1) * E]
        return F.linear(x, w, b)

    def _heads(self, x: Tensor) -> Tensor:
        """(N, T, E) -> (N, num_heads, T, head_dim)."""
        return x.reshape(x.shape[0], x.shape[1], self.num_heads, self.head_dim).transpose(1, 2)

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
        if (e != self.embed_dim or key.shape[2] != self.kdim or value.shape[2] != self.vdim
                or value.shape[:2] != key.shape[:2] or key.shape[0] != n):
            raise ValueError(f"MultiheadAttention(embed_dim={self.embed_dim}, kdim={self.kdim}, vdim={self.vdim}): "
                             f"got query {query.shape}, key {key.shape}, value {value.shape} (batch-first "
                             f"view); they must share N, their last dims must be embed_dim, kdim and vdim, "
                             f"and key and value must share the length S")
        k, v = self._project(key, 1), self._project(value, 2)
        if self.bias_k is not None:  # one more (learned) key and value for every sequence
            k = F.cat([k, self.bias_k.expand(n, 1, e)], 1)
            v = F.cat([v, self.bias_v.expand(n, 1, e)], 1)
        q, k, v = self._heads(self._project(query, 0)), self._heads(k), self._heads(v)
        if self.add_zero_attn:  # and a zero one, in every head
            zero = zeros(n, self.num_heads, 1, self.head_dim, dtype=q.dtype, device=q.device)
            k, v = F.cat([k, zero], 2), F.cat([v, zero], 2)
        mask = self._mask(attn_mask, key_padding_mask, is_causal, n, l, s, query.dtype, query.device)
        if mask is not None and k.shape[2] > s:  # the appended keys may always be attended
            xp = compat.array_module(mask)
            mask = xp.concatenate([mask, xp.zeros(mask.shape[:-1] + (k.shape[2] - s,), mask.dtype)], -1)
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
