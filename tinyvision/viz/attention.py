"""What a Vision Transformer attends to: per-layer, per-head attention, temperature, rollout,
and the similarity of its learned position embeddings.

The attention of head h in a layer is softmax(q k^T / sqrt(d)) over the tokens. We read q and
k from the output of each block's ``attn.qkv`` Linear (a forward hook), so the model runs
unchanged; dividing the raw scores by a temperature T before the softmax flattens (T > 1) or
sharpens (T < 1) each row, which is the study notes' experiment with T = 1, 10, 30.
"""
from __future__ import annotations

from typing import Any

import numpy as np

import tinyvision as tv
from tinyvision.viz._model import evaluating, one_image


def attention_maps(model: Any, image: Any, temperature: float = 1.0) -> dict[str, np.ndarray]:
    """Run ``image`` (C, H, W) or (1, C, H, W) through a ViT and return, stacked over layers:

    ``scores``    (layers, heads, L, L): raw q k^T / sqrt(d), before the softmax;
    ``attention`` (layers, heads, L, L): softmax(scores / temperature), rows sum to 1;
    ``logits``    (classes,): the model's output.
    L = 1 + number of patches (the class token is token 0).
    """
    if temperature <= 0:
        raise ValueError(f"attention_maps: temperature must be > 0, got {temperature}")
    blocks = getattr(model, "blocks", None)
    if blocks is None:
        raise TypeError(f"attention_maps needs a VisionTransformer (with .blocks), got {type(model).__name__}")
    captured: list[np.ndarray] = []

    def grab(module: Any, inputs: Any, output: tv.Tensor) -> None:
        captured.append(output.detach().numpy())

    handles = [block.attn.qkv.register_forward_hook(grab) for block in blocks]
    try:
        with tv.no_grad(), evaluating(model) as m:
            logits = m(one_image(model, image))
    finally:
        for h in handles:
            h.remove()
    scores = []
    for qkv, block in zip(captured, blocks):
        n, length, three_d = qkv.shape
        heads, hd = block.attn.num_heads, block.attn.head_dim
        q, k, _ = qkv[0].reshape(length, 3, heads, hd).transpose(1, 2, 0, 3)  # (heads, L, hd) each
        scores.append(q @ k.transpose(0, 2, 1) * block.attn.scale)
    scores = np.stack(scores)
    return {"scores": scores, "attention": softmax(scores / temperature), "logits": logits.numpy()[0]}


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def attention_rollout(attention: np.ndarray, residual: float = 0.5) -> np.ndarray:
    """Abnar & Zuidema's rollout: how much each output token draws on each input token
    through all layers. Per layer, average the heads, mix in the residual connection
    (A' = (1 - residual) A + residual I, rows renormalised), then multiply the layers:
    R = A'_L ... A'_1. ``attention``: (layers, heads, L, L) -> (L, L)."""
    length = attention.shape[-1]
    rollout = np.eye(length)
    for layer in attention:
        a = (1 - residual) * layer.mean(0) + residual * np.eye(length)
        rollout = (a / a.sum(-1, keepdims=True)) @ rollout
    return rollout


def cls_attention_grid(attention: np.ndarray) -> np.ndarray:
    """The class token's attention over the patches, as the patch grid: (L, L) or
    (heads, L, L) -> (g, g) (heads averaged)."""
    a = attention.mean(0) if attention.ndim == 3 else attention
    row = a[0, 1:]
    g = int(round(np.sqrt(row.size)))
    if g * g != row.size:
        raise ValueError(f"cls_attention_grid: {row.size} patches do not form a square grid")
    return row.reshape(g, g)


def position_embedding_similarity(model: Any) -> np.ndarray:
    """Cosine similarity of each patch's learned position embedding with every other one.

    Returns (g, g, g, g): entry [i, j] is the g x g map of patch (i, j)'s similarity with all
    patches. A trained ViT shows a bright spot around (i, j) and bright row i / column j: it has
    learned the 2-D layout from a 1-D embedding. (The class-token slot is left out.)
    """
    pos = model.pos_embed.detach().numpy()[0, 1:].astype(np.float64)  # (patches, D)
    g = int(round(np.sqrt(pos.shape[0])))
    if g * g != pos.shape[0]:
        raise ValueError(f"position_embedding_similarity: {pos.shape[0]} patches do not form a square grid")
    unit = pos / np.maximum(np.linalg.norm(pos, axis=1, keepdims=True), 1e-12)
    return (unit @ unit.T).reshape(g, g, g, g)
