"""DETR's transformer: post-norm encoder-decoder (Vaswani et al. 2017) with the position added
to queries and keys at every layer (Carion et al. 2020), and every decoder layer's output kept.

It differs from ``nn.Transformer`` in two ways, which is why it has its own layers (built from
the same ``nn.MultiheadAttention``, ``Linear`` and ``LayerNorm``, with the same state_dict keys):

* the position is not added once to the input: the encoder adds the sine encoding ``pos`` to
  the queries and keys (never to the values) of every self-attention, and the decoder adds the
  learned object queries ``query_pos`` to its queries and ``pos`` to the memory's keys;
* the decoder returns the normed output of *every* layer (``return_intermediate``), so that the
  auxiliary losses can supervise each of them through the shared heads.

Shapes are sequence-first as in the reference: tokens (S, N, E) with S = H*W, queries (Q, N, E).

    encoder layer:  q = k = src + pos
                    src = norm1(src + dropout1(self_attn(q, k, src)))
                    src = norm2(src + dropout2(linear2(dropout(relu(linear1(src))))))
    decoder layer:  q = k = tgt + query_pos
                    tgt = norm1(tgt + dropout1(self_attn(q, k, tgt)))
                    tgt = norm2(tgt + dropout2(multihead_attn(tgt + query_pos, memory + pos, memory)))
                    tgt = norm3(tgt + dropout3(FFN(tgt)))

The decoder starts from tgt = 0: the queries enter only through ``query_pos``.
Keys: encoder.layers.<i>.{self_attn,linear1,linear2,norm1,norm2}.*, decoder.layers.<i>.{self_attn,
multihead_attn,linear1,linear2,norm1,norm2,norm3}.*, decoder.norm.* (the reference's names).
"""
from __future__ import annotations

import copy
from typing import Any

from tinyvision import functional as F
from tinyvision.autograd.tensor import Tensor
from tinyvision.creation import zeros_like
from tinyvision.nn import Dropout, LayerNorm, Linear, Module, ModuleList, MultiheadAttention, init


def _with_pos(x: Tensor, pos: Tensor | None) -> Tensor:
    return x if pos is None else x + pos


class _FeedForward(Module):
    """The shared parts of both layers: the FFN linear1 -> relu -> dropout -> linear2."""

    def _ffn_init(self, d_model: int, dim_feedforward: int, dropout: float) -> None:
        self.linear1 = Linear(d_model, dim_feedforward)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model)

    def _ffn(self, x: Tensor) -> Tensor:
        return self.linear2(self.dropout(F.relu(self.linear1(x))))


class TransformerEncoderLayer(_FeedForward):
    """One post-norm encoder layer; ``forward(src (S, N, E), src_key_padding_mask (N, S), pos (S, N, E))``."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout)
        self._ffn_init(d_model, dim_feedforward, dropout)
        self.norm1, self.norm2 = LayerNorm(d_model), LayerNorm(d_model)
        self.dropout1, self.dropout2 = Dropout(dropout), Dropout(dropout)

    def forward(self, src: Tensor, src_key_padding_mask: Any = None, pos: Tensor | None = None) -> Tensor:
        q = k = _with_pos(src, pos)
        src = self.norm1(src + self.dropout1(self.self_attn(q, k, src, key_padding_mask=src_key_padding_mask,
                                                            need_weights=False)[0]))
        return self.norm2(src + self.dropout2(self._ffn(src)))


class TransformerDecoderLayer(_FeedForward):
    """One post-norm decoder layer. ``forward(tgt (Q, N, E), memory (S, N, E), ...)``; the
    cross-attention weights of the last call (N, Q, S), averaged over heads, are kept in
    ``self.last_attention`` when ``keep_attention`` is set (for the per-query attention figure)."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout)
        self._ffn_init(d_model, dim_feedforward, dropout)
        self.norm1, self.norm2, self.norm3 = LayerNorm(d_model), LayerNorm(d_model), LayerNorm(d_model)
        self.dropout1, self.dropout2, self.dropout3 = Dropout(dropout), Dropout(dropout), Dropout(dropout)
        self.keep_attention = False
        self.last_attention: Tensor | None = None

    def forward(self, tgt: Tensor, memory: Tensor, memory_key_padding_mask: Any = None,
                pos: Tensor | None = None, query_pos: Tensor | None = None) -> Tensor:
        q = k = _with_pos(tgt, query_pos)
        tgt = self.norm1(tgt + self.dropout1(self.self_attn(q, k, tgt, need_weights=False)[0]))
        attended, weights = self.multihead_attn(_with_pos(tgt, query_pos), _with_pos(memory, pos), memory,
                                                key_padding_mask=memory_key_padding_mask,
                                                need_weights=self.keep_attention)
        self.last_attention = None if weights is None else weights.detach()
        tgt = self.norm2(tgt + self.dropout2(attended))
        return self.norm3(tgt + self.dropout3(self._ffn(tgt)))


class TransformerEncoder(Module):
    def __init__(self, layer: TransformerEncoderLayer, num_layers: int) -> None:
        super().__init__()
        self.layers = ModuleList([copy.deepcopy(layer) for _ in range(num_layers)])

    def forward(self, src: Tensor, src_key_padding_mask: Any = None, pos: Tensor | None = None) -> Tensor:
        for layer in self.layers:
            src = layer(src, src_key_padding_mask=src_key_padding_mask, pos=pos)
        return src


class TransformerDecoder(Module):
    """The decoder stack; returns (num_layers, Q, N, E): ``norm`` of every layer's output."""

    def __init__(self, layer: TransformerDecoderLayer, num_layers: int, d_model: int) -> None:
        super().__init__()
        self.layers = ModuleList([copy.deepcopy(layer) for _ in range(num_layers)])
        self.norm = LayerNorm(d_model)

    def forward(self, tgt: Tensor, memory: Tensor, memory_key_padding_mask: Any = None,
                pos: Tensor | None = None, query_pos: Tensor | None = None) -> Tensor:
        intermediate = []
        for layer in self.layers:
            tgt = layer(tgt, memory, memory_key_padding_mask=memory_key_padding_mask, pos=pos, query_pos=query_pos)
            intermediate.append(self.norm(tgt))
        return F.stack(intermediate)


class Transformer(Module):
    """``forward(src (N, E, H, W), mask (N, H, W) or None, query_embed (Q, E), pos_embed (N, E, H, W))``
    -> (hs (num_decoder_layers, N, Q, E), memory (N, E, H, W))."""

    def __init__(self, d_model: int = 512, nhead: int = 8, num_encoder_layers: int = 6, num_decoder_layers: int = 6,
                 dim_feedforward: int = 2048, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = TransformerEncoder(TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout),
                                          num_encoder_layers)
        self.decoder = TransformerDecoder(TransformerDecoderLayer(d_model, nhead, dim_feedforward, dropout),
                                          num_decoder_layers, d_model)
        self.d_model, self.nhead = d_model, nhead
        for p in self.parameters():   # the reference: Xavier-uniform on every matrix, after building
            if p.ndim > 1:
                init.xavier_uniform_(p)

    def forward(self, src: Tensor, mask: Any, query_embed: Tensor, pos_embed: Tensor) -> tuple[Tensor, Tensor]:
        n, e, h, w = src.shape
        src = src.flatten(2).permute(2, 0, 1)                  # (H*W, N, E)
        pos_embed = pos_embed.flatten(2).permute(2, 0, 1)
        query_pos = query_embed.unsqueeze(1).expand(query_embed.shape[0], n, e)
        key_padding = None if mask is None else (mask.data if isinstance(mask, Tensor) else mask).reshape(n, h * w)
        memory = self.encoder(src, src_key_padding_mask=key_padding, pos=pos_embed)
        tgt = zeros_like(query_pos)
        hs = self.decoder(tgt, memory, memory_key_padding_mask=key_padding, pos=pos_embed, query_pos=query_pos)
        return hs.transpose(1, 2), memory.permute(1, 2, 0).reshape(n, e, h, w)
