"""``tinyvision viz detr --checkpoint C``: what DETR's object queries look at and what they learn.

* ``decoder_attention``: the last decoder layer's cross-attention of each query over the
  encoder's H' x W' tokens (averaged over heads), the paper's Fig. 6: a query that found an
  object attends to that object's extremities, the pixels that fix its box.
* ``query_centres``: the centre of every query's box over many test images, one panel per
  query (the paper's Fig. 7): each query specialises in a region of the image and box size.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

import tinyvision as tv
from tinyvision.models.detr import normalise_images


def decoder_attention(model: Any, image: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(detections of ``image`` (3, H, W), attention (Q, H', W') of the last decoder layer)."""
    layer = model.transformer.decoder.layers[-1]
    model.eval()
    layer.keep_attention = True
    try:
        with tv.no_grad():
            x = tv.tensor(image[None])
            features, _ = model.backbone(normalise_images(x))
            outputs = model(x)
    finally:
        layer.keep_attention = False
    h, w = features.shape[-2:]
    attention = layer.last_attention.numpy()[0].reshape(-1, h, w)
    return model.postprocess(outputs, [tuple(image.shape[-2:])])[0], attention


def plot_decoder_attention(image: np.ndarray, detections: dict, attention: np.ndarray, path: Path,
                           score_thresh: float = 0.5, names: tuple[str, ...] = ()) -> Path:
    """One panel per query scoring above ``score_thresh``: its attention over the image, its box."""
    from matplotlib.patches import Rectangle

    from tinyvision.viz.plot import _figure, _save, _show_image

    keep = [int(i) for i in np.argsort(-detections["scores"]) if detections["scores"][i] >= score_thresh][:6]
    fig = _figure((2.6 * (len(keep) + 1), 2.8))
    ax = fig.add_subplot(1, len(keep) + 1, 1)
    _show_image(ax, image)
    ax.set_title("image")
    ax.set_axis_off()
    size = image.shape[-2:]
    for k, q in enumerate(keep):
        ax = fig.add_subplot(1, len(keep) + 1, k + 2)
        _show_image(ax, image)
        ry, rx = size[0] // attention.shape[1], size[1] // attention.shape[2]
        ax.imshow(np.kron(attention[q], np.ones((ry, rx))), cmap="inferno", alpha=0.6, interpolation="nearest")
        x1, y1, x2, y2 = detections["boxes"][q]
        ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, edgecolor="cyan", linewidth=1.5))
        label = int(detections["labels"][q])
        name = names[label] if label < len(names) else str(label)
        ax.set_title(f"query {q}: {name} {detections['scores'][q]:.2f}", fontsize=8)
        ax.set_axis_off()
    return _save(fig, path)


def query_centres(model: Any, images: np.ndarray, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Box centres (Q, n, 2) in normalised (cx, cy) and widths x heights (Q, n) of every query
    on every image of ``images`` (n, 3, H, W)."""
    model.eval()
    centres, areas = [], []
    with tv.no_grad():
        for a in range(0, len(images), batch_size):
            boxes = model(tv.tensor(images[a:a + batch_size]))["pred_boxes"].numpy()
            centres.append(boxes[..., :2])
            areas.append(boxes[..., 2] * boxes[..., 3])
    return np.concatenate(centres).transpose(1, 0, 2), np.concatenate(areas).T


def plot_query_centres(centres: np.ndarray, areas: np.ndarray, path: Path) -> Path:
    """One panel per query: its box centres over the images, coloured by box area."""
    from tinyvision.viz.plot import _figure, _save

    q = centres.shape[0]
    cols = min(q, 5)
    rows = -(-q // cols)
    fig = _figure((2.2 * cols, 2.2 * rows))
    for i in range(q):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.scatter(centres[i, :, 0], centres[i, :, 1], c=areas[i], s=4, cmap="viridis", vmin=0, vmax=0.15)
        ax.set_xlim(0, 1)
        ax.set_ylim(1, 0)     # image coordinates: y down
        ax.set_title(f"query {i}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    return _save(fig, path)


def run_detr(args: argparse.Namespace) -> None:
    """``tinyvision viz detr --checkpoint C --out DIR``: both pictures on the test scenes."""
    from tinyvision.data.shapes import SEGMENTATION_CLASSES
    from tinyvision.train.checkpoint import load_checkpoint  # the CLI turns its errors into one line
    from tinyvision.train.detect import scene_datasets

    if not args.checkpoint:
        raise SystemExit("viz detr: give --checkpoint PATH (a detr task's checkpoint)")
    model, config = load_checkpoint(args.checkpoint)
    if config.get("task") != "detr":
        raise SystemExit(f"viz detr: {args.checkpoint} was trained for task {config.get('task')!r}; give a detr checkpoint")
    _, _, test = scene_datasets(config)
    out = Path(args.out)
    image = np.asarray(test[0][0])
    detections, attention = decoder_attention(model, image)
    print("wrote", plot_decoder_attention(image, detections, attention, out / "detr_attention.png",
                                          names=SEGMENTATION_CLASSES))
    images = np.stack([np.asarray(test[i][0]) for i in range(min(len(test), 500))])
    print("wrote", plot_query_centres(*query_centres(model, images), out / "detr_query_centres.png"))
