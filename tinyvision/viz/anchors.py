"""``tinyvision viz anchors``: a detector's anchors on a shapes scene, level by level, and which
of them the matcher assigns to the ground-truth boxes (the positives that train the box and
class predictions).

Without ``--checkpoint`` it uses the ``detect`` recipe's RetinaNet (64x64 images, base sizes 8-128
on P3-P7); with one, that checkpoint's model. One panel per FPN level: the scene with its truth
boxes (white), every anchor position of the level (dots), and the anchors matched to a truth
(IoU >= 0.5, or the best one of a truth that no anchor reaches 0.5 with), coloured by truth.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

import tinyvision as tv


def matched_anchors(model: Any, image: np.ndarray, boxes: np.ndarray) -> list[dict[str, np.ndarray]]:
    """Per level: its anchors (n, 4), their positions' centres (n, 2), and for each anchor the
    index of the truth it is matched to (-1 background, -2 ignored)."""
    from tinyvision.ops import box_iou

    model.eval()
    with tv.no_grad():
        image_list, _ = model.transform([tv.tensor(image)])
        features = list(model.backbone(image_list.tensors).values())
        anchors = model.anchor_generator(image_list, features)[0].numpy()
    matched = model.proposal_matcher(box_iou(tv.tensor(boxes.astype(anchors.dtype)), tv.tensor(anchors))).numpy()
    per_level = [f.shape[2] * f.shape[3] * model.anchor_generator.num_anchors_per_location()[0] for f in features]
    bounds = np.cumsum([0] + per_level)
    return [{"anchors": anchors[a:b], "matched": matched[a:b], "stride": image_list.tensors.shape[-1] // f.shape[-1]}
            for a, b, f in zip(bounds[:-1], bounds[1:], features)]


def plot_anchors(image: np.ndarray, boxes: np.ndarray, levels: list[dict], path: Path) -> Path:
    from matplotlib.patches import Rectangle

    from tinyvision.viz.plot import _figure, _save, _show_image

    fig = _figure((3.2 * len(levels), 3.4))
    colours = ("tab:red", "tab:cyan", "tab:green", "tab:orange", "tab:purple")
    H, W = image.shape[-2:]
    for k, level in enumerate(levels):
        ax = fig.add_subplot(1, len(levels), k + 1)
        _show_image(ax, image)
        centres = (level["anchors"][:, :2] + level["anchors"][:, 2:]) / 2
        ax.scatter(centres[:, 0] - 0.5, centres[:, 1] - 0.5, s=4, c="white", alpha=0.6)
        for (x1, y1, x2, y2), m in zip(level["anchors"], level["matched"]):
            if m >= 0:
                ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False,
                                       edgecolor=colours[m % len(colours)], linewidth=1.2))
        for x1, y1, x2, y2 in boxes:
            ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, edgecolor="white",
                                   linewidth=1.5, linestyle="--"))
        ax.set_xlim(-8.5, W + 7.5)
        ax.set_ylim(H + 7.5, -8.5)
        ax.set_title(f"P{k + 3}: stride {level['stride']}, {int((level['matched'] >= 0).sum())} matched", fontsize=9)
    return _save(fig, path)


def run_anchors(args: argparse.Namespace) -> None:
    from tinyvision.data import shapes_scenes

    if args.checkpoint:
        from tinyvision.train.checkpoint import load_checkpoint

        model, config = load_checkpoint(args.checkpoint)
        size = config["image_size"]
    else:
        from tinyvision.models import create_model
        from tinyvision.train.detect import DetectTask

        task = DetectTask()
        size = args.image_size or 64
        config = dict(task.defaults, model=task.default_model, image_size=size, num_classes=4)
        model = create_model(task.default_model, **task.model_kwargs(config, None))
    if not hasattr(model, "anchor_generator"):
        raise SystemExit("viz anchors: the model has no anchor generator (use a RetinaNet checkpoint)")
    image, target = shapes_scenes(1, size, seed=3)[0]
    levels = matched_anchors(model, image, target["boxes"])
    for k, level in enumerate(levels):
        print(f"P{k + 3}: {len(level['anchors'])} anchors (stride {level['stride']}), "
              f"{int((level['matched'] >= 0).sum())} matched to the {len(target['boxes'])} boxes")
    print("wrote", plot_anchors(image, target["boxes"], levels, Path(args.out) / "anchors.png"))
