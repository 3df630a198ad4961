"""The Transformer of Vaswani et al. (2017), as ``torch.nn.Transformer`` and its parts, with
PyTorch's arguments, defaults and state_dict keys, so that a torch checkpoint loads unchanged.

Read top to bottom: the encoder layer, the decoder layer, the stacks, the whole model.

    encoder layer (post-norm, the paper):  x = norm1(x + SA(x));       x = norm2(x + FF(x))
    encoder layer (norm_first, pre-norm):  x = x + SA(norm1(x));       x = x + FF(norm2(x))
    decoder layer adds cross-attention to the encoder's output ("memory") between the two:
                                           x = norm2(x + MHA(x, memory))  (or x + MHA(norm2(x), memory))

with SA(x) = dropout1(self_attn(x, x, x)), FF(x) = dropout2(linear2(dropout(act(linear1(x))))).
Pre-norm keeps an identity path from input to output through every layer, which trains deep
stacks without warm-up (Xiong et al. 2020); ViT and DETR's successors use it, DETR uses post-norm.

Keys (per encoder layer): self_attn.in_proj_weight (3E, E), self_attn.in_proj_bias,
self_attn.out_proj.{weight,bias}, linear1.{weight,bias} (F, E), linear2.{weight,bias} (E, F),
norm1/norm2.{weight,bias}; a decoder layer adds multihead_attn.* and norm3.*. Stacks prefix
them with ``layers.<i>.`` and keep an optional final ``norm.``; ``Transformer`` prefixes
``encoder.`` / ``decoder.``.

Masks, as torch: ``*_mask`` (L, S) or (N * nhead, L, S), bool (True = may NOT attend) or float
(added to the scores, -inf blocks); ``*_key_padding_mask`` (N, S), True marks padding.
``is_causal`` / ``tgt_is_causal`` are hints that the mask is the causal one; where torch needs
the mask as well, these layers build it themselves when it is missing.
"""
from __future__ import annotations

import copy
from typing import Any, Callable

import numpy as np

from tinyvision import functional as F
from tinyvision.autograd.tensor import Tensor
from tinyvision.kernels import compat
from tinyvision.nn import init
from tinyvision.nn.attention import MultiheadAttention
from tinyvision.nn.dropout import Dropout
from tinyvision.nn.linear import Linear
from tinyvision.nn.container import ModuleList
from tinyvision.nn.module import Module
from tinyvision.nn.normalization import LayerNorm

Activation = str | Callable[[Tensor], Tensor]


def _activation(name: str, activation: Activation) -> Callable[[Tensor], Tensor]:
    """'relu' or 'gelu' as the function (torch's two names), or the callable as it is."""
    if isinstance(activation, str):
        if activation not in ("relu", "gelu"):
            raise ValueError(f"{name}: activation should be 'relu' or 'gelu' (or a callable), got {activation!r}")
        return F.relu if activation == "relu" else F.gelu
    if not callable(activation):
        raise TypeError(f"{name}: activation must be 'relu', 'gelu' or a callable, got {type(activation).__name__}")
    return activation


def generate_square_subsequent_mask(sz: int, device: str | None = None, dtype: Any = None) -> Tensor:
    """The causal mask (sz, sz): 0 on and below the diagonal, -inf above, so that position i
    attends to positions j <= i only (float, added to the scores)."""
    mask = np.triu(np.full((sz, sz), -np.inf, dtype=np.dtype(dtype or np.float32)), k=1)
    return Tensor(compat.to_device(mask, device or "cpu"))


def _is_causal_hint(mask: Any, is_causal: bool | None, size: int) -> bool:
    """torch's rule for the stacks: with is_causal None, a mask equal to the causal mask counts
    as causal (only a hint: the mask itself is applied either way)."""
    if is_causal is not None:
        return bool(is_causal)
    if mask is None:
        return False
    m = compat.to_numpy(mask.data if isinstance(mask, Tensor) else mask)
    if m.shape != (size, size):
        return False
    causal = np.triu(np.ones((size, size), dtype=bool), k=1)  # True = blocked
    if m.dtype == np.bool_:
        return bool((m == causal).all())
    return bool((np.isneginf(m) == causal).all() and (m[~causal] == 0).all())


class _Layer(Module):
    """What both layers hold, in torch's key order: self_attn (and, in the decoder,
    multihead_attn), the feed-forward net linear1 -> activation -> dropout -> linear2, one
    LayerNorm and one Dropout per residual branch (2 in the encoder, 3 in the decoder)."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float, activation: Activation,
                 layer_norm_eps: float, batch_first: bool, norm_first: bool, bias: bool, device: str | None,
                 dtype: Any, branches: int) -> None:
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first, **kw)
        if branches == 3:  # the decoder's cross-attention to the encoder's output
            self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                                     batch_first=batch_first, **kw)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, **kw)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, **kw)
        self.norm_first = norm_first
        for i in range(1, branches + 1):
            setattr(self, f"norm{i}", LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw))
        for i in range(1, branches + 1):
            setattr(self, f"dropout{i}", Dropout(dropout))
        self.activation = _activation(type(self).__name__, activation)
        self._ff_dropout = f"dropout{branches}"  # the feed-forward branch is the last one

    def _sa_block(self, x: Tensor, attn_mask: Any, key_padding_mask: Any, is_causal: bool) -> Tensor:
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           need_weights=False, is_causal=is_causal)[0]
        return self.dropout1(x)

    def _ff_block(self, x: Tensor) -> Tensor:
        x = self.linear1(x)
        x = self.activation(x)
        x = self.linear2(self.dropout(x))
        return getattr(self, self._ff_dropout)(x)


class TransformerEncoderLayer(_Layer):
    """Self-attention and a feed-forward net, each wrapped in a residual and a LayerNorm.

    src (S, N, E) -- (N, S, E) with ``batch_first`` -- or (S, E) unbatched -> the same shape.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: Activation = "relu", layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, device: str | None = None,
                 dtype: Any = None) -> None:
        super().__init__(d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, batch_first,
                         norm_first, bias, device, dtype, branches=2)

    def forward(self, src: Tensor, src_mask: Any = None, src_key_padding_mask: Any = None,
                is_causal: bool = False) -> Tensor:
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x))
        return x


class TransformerDecoderLayer(_Layer):
    """Masked self-attention, cross-attention to ``memory``, a feed-forward net; each wrapped
    in a residual and a LayerNorm. tgt (T, N, E), memory (S, N, E) (batch first or unbatched
    as the encoder layer) -> tgt's shape."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: Activation = "relu", layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, device: str | None = None,
                 dtype: Any = None) -> None:
        super().__init__(d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, batch_first,
                         norm_first, bias, device, dtype, branches=3)

    def forward(self, tgt: Tensor, memory: Tensor, tgt_mask: Any = None, memory_mask: Any = None,
                tgt_key_padding_mask: Any = None, memory_key_padding_mask: Any = None,
                tgt_is_causal: bool = False, memory_is_causal: bool = False) -> Tensor:
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask, memory_key_padding_mask, memory_is_causal)
            x = x + self._ff_block(self.norm3(x))
        else:
            x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
            x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask, memory_is_causal))
            x = self.norm3(x + self._ff_block(x))
        return x

    def _mha_block(self, x: Tensor, mem: Tensor, attn_mask: Any, key_padding_mask: Any, is_causal: bool) -> Tensor:
        x = self.multihead_attn(x, mem, mem, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                                need_weights=False, is_causal=is_causal)[0]
        return self.dropout2(x)


def _clones(layer: Module, n: int) -> ModuleList:
    """n independent deep copies of ``layer`` (torch copies it too: same init, separate weights)."""
    return ModuleList([copy.deepcopy(layer) for _ in range(n)])


def _sequence_length(x: Tensor, batch_first: bool) -> int:
    return x.shape[1] if batch_first and x.ndim == 3 else x.shape[0]


class TransformerEncoder(Module):
    """``num_layers`` copies of ``encoder_layer`` applied in turn, then ``norm`` if given.

    ``enable_nested_tensor`` and ``mask_check`` are accepted for torch's signature; torch's
    nested-tensor fast path (eval mode, with a padding mask) writes 0 at padded positions,
    while this (like torch's training path) leaves whatever the layers computed there.
    """

    def __init__(self, encoder_layer: TransformerEncoderLayer, num_layers: int, norm: Module | None = None,
                 enable_nested_tensor: bool = True, mask_check: bool = True) -> None:
        super().__init__()
        self.layers = _clones(encoder_layer, num_layers)
        self.num_layers, self.norm = num_layers, norm
        self.enable_nested_tensor, self.mask_check = enable_nested_tensor, mask_check

    def forward(self, src: Tensor, mask: Any = None, src_key_padding_mask: Any = None,
                is_causal: bool | None = None) -> Tensor:
        batch_first = self.layers[0].self_attn.batch_first if self.num_layers else False
        is_causal = _is_causal_hint(mask, is_causal, _sequence_length(src, batch_first))
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=is_causal)
        return x if self.norm is None else self.norm(x)


class TransformerDecoder(Module):
    """``num_layers`` copies of ``decoder_layer``, each attending to the same ``memory``,
    then ``norm`` if given."""

    def __init__(self, decoder_layer: TransformerDecoderLayer, num_layers: int, norm: Module | None = None) -> None:
        super().__init__()
        self.layers = _clones(decoder_layer, num_layers)
        self.num_layers, self.norm = num_layers, norm

    def forward(self, tgt: Tensor, memory: Tensor, tgt_mask: Any = None, memory_mask: Any = None,
                tgt_key_padding_mask: Any = None, memory_key_padding_mask: Any = None,
                tgt_is_causal: bool | None = None, memory_is_causal: bool = False) -> Tensor:
        batch_first = self.layers[0].self_attn.batch_first if self.num_layers else False
        tgt_is_causal = _is_causal_hint(tgt_mask, tgt_is_causal, _sequence_length(tgt, batch_first))
        x = tgt
        for layer in self.layers:
            x = layer(x, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                      tgt_key_padding_mask=tgt_key_padding_mask,
                      memory_key_padding_mask=memory_key_padding_mask,
                      tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)
        return x if self.norm is None else self.norm(x)


class Transformer(Module):
    """Encoder-decoder Transformer: memory = encoder(src); out = decoder(tgt, memory).

    src (S, N, E), tgt (T, N, E) -- (N, S, E), (N, T, E) with ``batch_first`` -- -> (T, N, E).
    Both stacks end in a LayerNorm (``encoder.norm``, ``decoder.norm``), as torch. Every
    parameter with more than one dim is re-drawn Xavier-uniform (torch's _reset_parameters).
    """

    def __init__(self, d_model: int = 512, nhead: int = 8, num_encoder_layers: int = 6,
                 num_decoder_layers: int = 6, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: Activation = "relu", custom_encoder: Module | None = None,
                 custom_decoder: Module | None = None, layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False, bias: bool = True,
                 device: str | None = None, dtype: Any = None) -> None:
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        layer_args = (d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, batch_first,
                      norm_first, bias)
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            self.encoder = TransformerEncoder(TransformerEncoderLayer(*layer_args, **kw), num_encoder_layers,
                                              LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw))
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            self.decoder = TransformerDecoder(TransformerDecoderLayer(*layer_args, **kw), num_decoder_layers,
                                              LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw))
        self.d_model, self.nhead, self.batch_first = d_model, nhead, batch_first
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        for p in self.parameters():
            if p.ndim > 1:
                init.xavier_uniform_(p)

    generate_square_subsequent_mask = staticmethod(generate_square_subsequent_mask)

    def forward(self, src: Tensor, tgt: Tensor, src_mask: Any = None, tgt_mask: Any = None,
                memory_mask: Any = None, src_key_padding_mask: Any = None, tgt_key_padding_mask: Any = None,
                memory_key_padding_mask: Any = None, src_is_causal: bool | None = None,
                tgt_is_causal: bool | None = None, memory_is_causal: bool = False) -> Tensor:
        batch_dim = 0 if self.batch_first else 1
        if src.ndim != tgt.ndim or src.ndim not in (2, 3):
            raise ValueError(f"Transformer: src and tgt must both be 3-D (or both 2-D, unbatched), got "
                             f"shapes {src.shape} and {tgt.shape}")
        if src.ndim == 3 and src.shape[batch_dim] != tgt.shape[batch_dim]:
            raise ValueError(f"Transformer: the batch number of src and tgt must be equal, got src {src.shape} "
                             f"and tgt {tgt.shape} (batch dim {batch_dim}, batch_first={self.batch_first})")
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise ValueError(f"Transformer: the feature number of src and tgt must be equal to d_model "
                             f"({self.d_model}), got src {src.shape} and tgt {tgt.shape}")
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask,
                              is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask,
                            tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)
