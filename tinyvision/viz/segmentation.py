"""Pictures of segmentations: class maps in colour, overlays, and the prediction grid
(image | truth | prediction) that docs/segmentation.md shows."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

# class 0 (background) black, then distinct colours (RGB in 0..255)
PALETTE = np.array([[0, 0, 0], [230, 25, 75], [60, 180, 75], [0, 130, 200], [255, 225, 25],
                    [145, 30, 180], [70, 240, 240], [245, 130, 48], [240, 50, 230], [128, 128, 0]], np.uint8)


def colorize(classes: np.ndarray, num_classes: int | None = None) -> np.ndarray:
    """(H, W) class indices -> (H, W, 3) uint8 colours (class c gets PALETTE[c mod 10])."""
    classes = np.asarray(classes)
    if classes.ndim != 2 or classes.dtype.kind not in "iub":
        raise ValueError(f"colorize: expected an (H, W) integer class map, got {classes.shape} {classes.dtype}")
    return PALETTE[classes % len(PALETTE)]


def overlay(image: np.ndarray, colours: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """(3, H, W) float image in [0, 1] and (H, W, 3) uint8 colours -> (H, W, 3) uint8, the colours
    blended in with weight ``alpha`` where they are not black (background stays as it is)."""
    rgb = np.clip(np.asarray(image, dtype=np.float64).transpose(1, 2, 0), 0, 1) * 255
    if rgb.shape != colours.shape:
        raise ValueError(f"overlay: image {rgb.shape[:2]} and colours {colours.shape[:2]} differ in size")
    painted = colours.any(axis=-1, keepdims=True)
    out = np.where(painted, (1 - alpha) * rgb + alpha * colours, rgb)
    return out.round().astype(np.uint8)


def plot_prediction_grid(images: Sequence[np.ndarray], truths: Sequence[np.ndarray],
                         predictions: Sequence[np.ndarray], path: str | Path,
                         class_names: Sequence[str] | None = None) -> Path:
    """One row per image: the image, the true class map, the predicted one (with its IoU)."""
    from tinyvision.metrics import mean_iou
    from tinyvision.viz.plot import _figure, _save, _show_image

    n = len(images)
    fig = _figure((6.5, 2.2 * n))
    axes = fig.subplots(n, 3, squeeze=False)
    num_classes = int(max(np.max(t) for t in truths)) + 1 if class_names is None else len(class_names)
    for row, (image, truth, pred) in enumerate(zip(images, truths, predictions)):
        _show_image(axes[row, 0], image)
        for col, classes in ((1, truth), (2, pred)):
            axes[row, col].imshow(colorize(np.asarray(classes)), interpolation="nearest")
            axes[row, col].axis("off")
        miou = mean_iou(np.asarray(pred)[None], np.asarray(truth)[None], max(num_classes, int(np.max(pred)) + 1))
        axes[row, 2].set_title(f"mIoU {miou:.2f}", fontsize=8)
    axes[0, 0].set_title("image", fontsize=9)
    legend = "\n" + ", ".join(f"{c} {name}" for c, name in enumerate(class_names)) if class_names else ""
    axes[0, 1].set_title("truth" + legend, fontsize=8)
    return _save(fig, path)


def prediction_grid_from_checkpoint(checkpoint: str, path: str | Path, n: int = 6) -> Path:
    """The prediction grid of a ``segment`` checkpoint on the first ``n`` images of its test split."""
    import tinyvision as tv
    from tinyvision.train.checkpoint import load_checkpoint
    from tinyvision.train.tasks import get_task
    from tinyvision.data.shapes import SEGMENTATION_CLASSES
    from tinyvision.train.segment import scores_of

    model, config = load_checkpoint(checkpoint)
    if config.get("task") != "segment":
        raise SystemExit(f"viz segments: {checkpoint} is a {config.get('task')!r} checkpoint, not a segment one")
    _, _, test = get_task("segment").datasets(config)
    images = np.stack([test[i][0] for i in range(n)])
    truths = [test[i][1] for i in range(n)]
    model.eval()
    with tv.no_grad():
        preds = scores_of(model(tv.tensor(images))).argmax(1).numpy()
    return plot_prediction_grid(list(images), truths, list(preds), path, class_names=list(SEGMENTATION_CLASSES))
