"""Draw the pictures in docs/segmentation.md and print its receptive-field table.

    .venv/bin/python docs/make_segmentation_figures.py [RUN_DIR]    # writes docs/img/seg_*.png

seg_unet_curves.png   (with RUN_DIR, a `tinyvision train --task segment --out RUN_DIR` folder)
                      loss and validation mean IoU per epoch, against wall-clock minutes

seg_scenes.png        shapes_scenes: images, class maps, instance masks with their boxes
seg_joint.png         one scene through joint transforms and Copy-Paste (masks and boxes follow)
seg_checkerboard.png  what a transposed convolution's overlap does to a flat input, vs bilinear
The training curve and the prediction grid come from the training run (see the page).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import tinyvision as tv  # noqa: E402
from tinyvision import nn, viz  # noqa: E402
from tinyvision.data import joint as J  # noqa: E402
from tinyvision.data import shapes_scenes  # noqa: E402
from tinyvision.models.resnet import resnet50  # noqa: E402
from tinyvision.viz.segmentation import colorize  # noqa: E402

OUT = Path(__file__).parent / "img"


def show_target(ax, image: np.ndarray, target: dict, title: str = "") -> None:
    """The image with each instance mask outlined and its box drawn (dashed), one colour per object."""
    ax.imshow(np.clip(image.transpose(1, 2, 0), 0, 1), interpolation="nearest")
    for k, (m, box) in enumerate(zip(target["masks"], target["boxes"])):
        colour = plt.cm.tab10(k % 10)
        if m.any():
            ax.contour(m.astype(float), levels=[0.5], colors=[colour], linewidths=1.0)
        x0, y0, x1, y1 = box
        ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, color=colour, lw=1.0, ls="--"))
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def scenes_figure() -> None:
    ds = shapes_scenes(6, image_size=64, seed=3)
    fig, axes = plt.subplots(3, 6, figsize=(12, 6.3))
    for i in range(6):
        image, target = ds[i]
        axes[0, i].imshow(image.transpose(1, 2, 0), interpolation="nearest")
        axes[0, i].axis("off")
        axes[1, i].imshow(colorize(target["semantic"]), interpolation="nearest")
        axes[1, i].axis("off")
        show_target(axes[2, i], image, target, f"{len(target['labels'])} objects")
    axes[0, 0].set_title("image", fontsize=8)
    axes[1, 0].set_title("semantic (0 bg, 1 circle, 2 square, 3 triangle)", fontsize=8, loc="left")
    fig.tight_layout()
    fig.savefig(OUT / "seg_scenes.png", dpi=90)


def joint_figure() -> None:
    ds = shapes_scenes(8, image_size=64, seed=11)
    image, target = ds[0]
    tv.manual_seed(2)
    steps = [("input", None), ("RandomRotation(40)", J.RandomRotation(40)),
             ("RandomResizedCrop(64, (0.3, 1))", J.RandomResizedCrop(64, scale=(0.3, 1.0))),
             ("RandomAffine(20, (0.1, 0.1),\n(0.8, 1.2), 10)", J.RandomAffine(20, (0.1, 0.1), (0.8, 1.2), 10))]
    fig, axes = plt.subplots(1, 6, figsize=(14, 2.8))
    for ax, (name, t) in zip(axes, steps):
        img, tgt = (image, target) if t is None else t(image, target)
        show_target(ax, img, tgt, name)
    src_image, src_target = ds[1]
    show_target(axes[4], src_image, src_target, "paste source")
    pasted_image, pasted = J.copy_paste(image, target, src_image, src_target, np.arange(len(src_target["labels"])))
    show_target(axes[5], pasted_image, pasted, "copy_paste(input, source)")
    fig.tight_layout()
    fig.savefig(OUT / "seg_joint.png", dpi=90)


def checkerboard_figure() -> None:
    """A flat (all-ones) 8x8 map upsampled x2 three ways, all weights 1: a 3x3 stride-2
    transposed conv overlaps unevenly (each output gets 1, 2 or 4 kernel taps), the U-Net's 2x2
    stride-2 one tiles without overlap, bilinear + conv is smooth."""
    x = tv.ones((1, 1, 8, 8))
    k3 = nn.ConvTranspose2d(1, 1, 3, stride=2, padding=1, output_padding=1, bias=False)
    k2 = nn.ConvTranspose2d(1, 1, 2, stride=2, bias=False)
    for layer in (k3, k2):
        nn.init.ones_(layer.weight)
    with tv.no_grad():
        maps = [("ConvTranspose2d(k=3, s=2)", k3(x)), ("ConvTranspose2d(k=2, s=2)", k2(x)),
                ("bilinear x2", tv.functional.interpolate(x, scale_factor=2, mode="bilinear"))]
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
    for ax, (name, y) in zip(axes, maps):
        im = ax.imshow(y.numpy()[0, 0], cmap="viridis", interpolation="nearest")
        values = ", ".join(f"{v:g}" for v in sorted(set(np.round(y.numpy().ravel().tolist(), 3))))
        ax.set_title(f"{name}\nvalues {values}", fontsize=8)
        ax.axis("off")
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(OUT / "seg_checkerboard.png", dpi=90)


def receptive_field_table() -> None:
    """ResNet-50's last layer with and without dilation, and what ASPP's rates add."""
    print("| backbone | layer4 output (64x64 input) | field (px) | jump (px) |\n|---|---|---|---|")
    for name, kw in (("resnet50", {}), ("resnet50, dilation [False, True, True]",
                                        {"replace_stride_with_dilation": [False, True, True]})):
        rows = viz.receptive_field(resnet50(**kw).eval(), (3, 64, 64))
        last = [r for r in rows if r["layer"].startswith("layer4")][-1]
        print(f"| {name} | {last['output_shape'][2:]} | {last['size'][0]} | {last['jump'][0]} |")
    jump = 8
    for rate in (1, 12, 24, 36):
        print(f"ASPP 3x3 rate {rate}: adds (3 - 1) * {rate} * {jump} = {2 * rate * jump} px to the field")


def curves_figure(run_dir: Path) -> None:
    import csv

    with open(run_dir / "metrics.csv") as f:
        rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    minutes = [r["time_s"] / 60 for r in rows]
    fig, (ax_loss, ax_iou) = plt.subplots(1, 2, figsize=(9, 3.2))
    ax_loss.plot(minutes, [r["train_loss"] for r in rows], "o-", label="train")
    ax_loss.plot(minutes, [r["val_loss"] for r in rows], "o-", label="val")
    ax_loss.set_title("loss (cross-entropy + soft Dice)", fontsize=9)
    ax_iou.plot(minutes, [r["val_mean_iou"] for r in rows], "o-", label="val mean IoU")
    ax_iou.plot(minutes, [r["val_pixel_acc"] for r in rows], "o-", label="val pixel accuracy")
    ax_iou.axhline(0.9, color="grey", ls=":", lw=1)
    ax_iou.set_ylim(0.3, 1.0)
    for ax in (ax_loss, ax_iou):
        ax.set_xlabel("wall-clock minutes (one point per epoch)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT / "seg_unet_curves.png", dpi=90)


if __name__ == "__main__":
    import sys

    OUT.mkdir(exist_ok=True)
    if len(sys.argv) > 1:
        curves_figure(Path(sys.argv[1]))
    scenes_figure()
    joint_figure()
    checkerboard_figure()
    receptive_field_table()
    print("wrote", ", ".join(str(OUT / f"seg_{n}.png") for n in ("scenes", "joint", "checkerboard")))
