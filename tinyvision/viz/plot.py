"""Pictures of what viz computes and of a training run, saved as PNG.

Every ``plot_*`` takes the arrays that the matching function returned, draws them, saves to
``path`` and returns the path. matplotlib is the ``viz`` extra and is imported only here.

Every figure has a title (the caller names the model, input size and layer), a colour bar
wherever colour encodes a number, and perceptually uniform colour maps (viridis, magma; grey
for images), never jet, whose bright bands invent edges that are not in the data.

The figures are ``matplotlib.figure.Figure`` objects drawn by the Agg canvas directly, never
through ``pyplot``: pyplot would choose (or, with ``matplotlib.use``, force) the process-wide
backend, which is the user's notebook's business, and it keeps every figure alive until closed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np


def _figure(figsize: tuple[float, float]) -> Any:
    """A Figure with its own Agg canvas: pyplot never sees it, so no global backend is set
    and nothing has to be closed (it is freed with its last reference)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


HEAT = "magma"     # heat maps over an image (Grad-CAM, saliency, rollout)
VALUES = "viridis"  # matrices and maps of values (attention, similarity, features)


def _colorbar(fig: Any, mappable: Any, axes: Any, label: str) -> None:
    fig.colorbar(mappable, ax=axes, shrink=0.8, label=label)


def _show_image(ax: Any, image: np.ndarray) -> None:
    """CHW (1 or 3 channels) -> displayed, each image rescaled to [0, 1]."""
    img = np.asarray(image, dtype=np.float64)
    img = (img - img.min()) / max(img.max() - img.min(), 1e-12)
    if img.ndim == 3:
        img = img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
    ax.axis("off")


def plot_attention_temperatures(scores: np.ndarray, path: str | Path, layer: int = -1, head: int = 0,
                                temperatures: Sequence[float] = (1, 10, 30), title: str = "") -> Path:
    """One head's attention matrix softmax(scores / T) for several temperatures, side by side,
    and the class token's row for each: higher T flattens the distribution towards uniform."""
    from tinyvision.viz.attention import softmax

    s = scores[layer, head]
    fig = _figure((3.2 * len(temperatures), 6))
    axes = fig.subplots(2, len(temperatures))
    for col, t in enumerate(temperatures):
        a = softmax(s / t)
        im = axes[0, col].imshow(a, cmap=VALUES, vmin=0)
        _colorbar(fig, im, axes[0, col], "attention weight")
        axes[0, col].set_title(f"T = {t}: max {a.max():.2f}")
        axes[0, col].axis("off")
        axes[1, col].plot(a[0])
        axes[1, col].set_ylim(0, max(1e-3, a[0].max() * 1.1))
        axes[1, col].set_title("class-token row")
        axes[1, col].set_xlabel("token (0 = class token)")
        axes[1, col].set_ylabel("attention weight")
    fig.suptitle(f"{title + ': ' if title else ''}layer {layer % scores.shape[0]}, head {head}: "
                 "softmax(q k^T / sqrt(d) / T)")
    return _save(fig, path)


def plot_attention_heads(attention: np.ndarray, path: str | Path, title: str = "") -> Path:
    """Grid of attention matrices: rows = layers, columns = heads, one colour scale for all."""
    layers, heads = attention.shape[:2]
    fig = _figure((1.6 * heads + 1.2, 1.6 * layers + 0.6))
    axes = fig.subplots(layers, heads, squeeze=False)
    top = float(attention.max())
    for i in range(layers):
        for j in range(heads):
            im = axes[i, j].imshow(attention[i, j], cmap=VALUES, vmin=0, vmax=top)
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
            if j == 0:
                axes[i, j].set_ylabel(f"layer {i}", fontsize=7)
            if i == 0:
                axes[i, j].set_title(f"head {j}", fontsize=7)
    _colorbar(fig, im, axes, "attention weight (row: query token, column: key token)")
    fig.suptitle(f"{title + ': ' if title else ''}attention per layer and head", fontsize=9)
    return _save(fig, path)


def plot_overlay(image: np.ndarray, heat: np.ndarray, path: str | Path, title: str = "",
                 label: str = "relevance") -> Path:
    """The image, and a heat map (any size; nearest-upsampled to the image) over it."""
    return plot_overlays([image], [heat], path, [title], label=label)


def plot_overlays(images: Sequence[np.ndarray], heats: Sequence[np.ndarray], path: str | Path,
                  titles: Sequence[str] | None = None, label: str = "relevance") -> Path:
    """One column per image: the image on top, its heat map over it below."""
    fig = _figure((3 * len(images), 6))
    axes = fig.subplots(2, len(images), squeeze=False)
    for col, (image, heat) in enumerate(zip(images, heats)):
        h, w = np.asarray(image).shape[-2:]
        heat = np.asarray(heat, dtype=np.float64)
        reps = (max(h // heat.shape[0], 1), max(w // heat.shape[1], 1))
        _show_image(axes[0, col], image)
        _show_image(axes[1, col], image)
        im = axes[1, col].imshow(np.kron(heat, np.ones(reps))[:h, :w], cmap=HEAT, alpha=0.6, vmin=0)
        _colorbar(fig, im, axes[1, col], label)
        if titles:
            axes[1, col].set_title(titles[col], fontsize=9)
    return _save(fig, path)


def plot_receptive_field(rows: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Field size and jump (height axis) of each spatial layer, in execution order."""
    fig = _figure((max(6, 0.25 * len(rows)), 4))
    ax = fig.subplots()
    x = np.arange(len(rows))
    ax.bar(x, [r["size"][0] for r in rows], label="field size (pixels)")
    ax.plot(x, [r["jump"][0] for r in rows], "o-", color="C1", label="jump (pixels per unit)")
    ax.set_xticks(x, [r["layer"] for r in rows], rotation=90, fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("input pixels (log scale)")
    ax.legend()
    ax.set_title(f"{title + ': ' if title else ''}receptive field per layer (height axis)")
    return _save(fig, path)


def plot_posembed_similarity(similarity: np.ndarray, path: str | Path, title: str = "") -> Path:
    """The (g, g, g, g) similarity as a g x g grid of g x g maps (the ViT paper's figure)."""
    g = similarity.shape[0]
    fig = _figure((0.9 * g + 1.2, 0.9 * g))
    axes = fig.subplots(g, g, squeeze=False)
    for i in range(g):
        for j in range(g):
            im = axes[i, j].imshow(similarity[i, j], cmap=VALUES, vmin=-1, vmax=1)
            axes[i, j].axis("off")
    _colorbar(fig, im, axes, "cosine similarity")
    fig.suptitle(f"{title + ': ' if title else ''}cosine similarity of position embeddings "
                 "(tile (i, j): patch (i, j) against every patch)")
    return _save(fig, path)


def plot_filters(weights: np.ndarray, path: str | Path, max_filters: int = 64, title: str = "") -> Path:
    """First-layer style filters, each tile labelled with its index and drawn large with
    nearest-neighbour pixels: RGB when they have 3 input channels, else channel 0 on a colour
    scale (``weights`` as ``viz.filters`` returns them, each scaled to [0, 1])."""
    n = min(len(weights), max_filters)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    fig = _figure((1.4 * cols + 1.2, 1.5 * rows + 0.6))
    axes = fig.subplots(rows, cols, squeeze=False)
    im = None
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            f = weights[k]
            if f.shape[0] == 3:
                ax.imshow(f.transpose(1, 2, 0), interpolation="nearest")
            else:
                im = ax.imshow(f[0], cmap=VALUES, vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(f"filter {k}", fontsize=7)
    if im is not None:
        _colorbar(fig, im, axes, "weight, scaled to [0, 1] per filter")
    kh, kw = weights.shape[-2:]
    fig.suptitle(f"{title + ': ' if title else ''}{n} filters of {kh}x{kw}", fontsize=9)
    return _save(fig, path)


def plot_feature_maps(maps: dict[str, np.ndarray], path: str | Path, per_layer: int = 8,
                      title: str = "") -> Path:
    """The first ``per_layer`` channels of each layer's output, one row per layer, one colour
    scale per row (with its bar)."""
    fig = _figure((1.4 * per_layer + 1.2, 1.5 * len(maps) + 0.6))
    axes = fig.subplots(len(maps), per_layer, squeeze=False)
    for row, (name, fmap) in enumerate(maps.items()):
        shown = np.asarray(fmap[:per_layer], dtype=np.float64)
        lo, hi = float(shown.min()), float(shown.max())
        for col in range(per_layer):
            ax = axes[row, col]
            ax.axis("off")
            if col < len(fmap):
                im = ax.imshow(fmap[col], cmap=VALUES, vmin=lo, vmax=hi)
        axes[row, 0].set_title(name, fontsize=7, loc="left")
        _colorbar(fig, im, axes[row], "activation")
    fig.suptitle(f"{title + ': ' if title else ''}feature maps (first {per_layer} channels)", fontsize=9)
    return _save(fig, path)


def plot_curves(rows: Sequence[dict[str, float]], path: str | Path, metric: str = "acc") -> Path:
    """Loss and ``metric`` per epoch, train and validation, side by side (the Trainer's
    ``curves.png``; ``rows`` are its per-epoch history: ``epoch``, ``train_loss``, ``val_acc``...;
    ``metric`` is the task's monitored one without its prefix: ``acc``, ``mean_iou``, ``map_50``...)."""
    epochs = [r["epoch"] for r in rows]
    fig = _figure((9, 3.5))
    axes = fig.subplots(1, 2)
    for ax, name in zip(axes, ("loss", metric)):
        for split in ("train", "val"):
            key = f"{split}_{name}"
            if any(key in r for r in rows):
                ax.plot(epochs, [r.get(key, np.nan) for r in rows], marker="o", label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel({"loss": "loss", "acc": "fraction correct"}.get(name, name.replace("_", " ")))
        ax.set_title({"loss": "loss", "acc": "accuracy"}.get(name, name.replace("_", " ")))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return _save(fig, path, dpi=100)


def plot_image_rows(rows: Sequence[np.ndarray], titles: Sequence[str], path: str | Path) -> Path:
    """One column per row array (each (N, C, H, W)), one line per image: e.g. MAE's original /
    masked / reconstruction side by side. Each image rescaled to [0, 1] on its own."""
    n = len(rows[0])
    fig = _figure((1.6 * len(rows), 1.6 * n))
    for i in range(n):
        for j, (images, title) in enumerate(zip(rows, titles)):
            ax = fig.add_subplot(n, len(rows), i * len(rows) + j + 1)
            _show_image(ax, images[i])
            if i == 0:
                ax.set_title(title, fontsize=8)
    return _save(fig, path)
