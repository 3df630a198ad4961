"""Draw the pictures in docs/data.md: each transform on a real digit and a generated shape,
MixUp/CutMix on a pair of shapes, and a page of the shapes dataset with boxes and masks.

    .venv/bin/python docs/make_data_figures.py      # writes docs/img/data_*.png
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import tinyvision as tv  # noqa: E402
from tinyvision.data import CutMix, MixUp, digits, shapes, transforms as T  # noqa: E402
from tinyvision.data.shapes import CLASSES  # noqa: E402

OUT = Path(__file__).parent / "img"
DRAWS = 4   # random draws shown per transform and sample

TRANSFORMS = [
    ("RandomResizedCrop(32,\nscale=(0.3, 1))", T.RandomResizedCrop(32, scale=(0.3, 1.0))),
    ("RandomCrop(32, padding=4)", T.RandomCrop(32, padding=4)),
    ("RandomHorizontalFlip(0.5)", T.RandomHorizontalFlip(0.5)),
    ("ColorJitter(0.5, 0.5,\n0.5, 0.2)", T.ColorJitter(0.5, 0.5, 0.5, 0.2)),
    ("RandomRotation(30)", T.RandomRotation(30)),
    ("RandomAffine(15, (0.1, 0.1),\n(0.8, 1.2), 10)", T.RandomAffine(15, (0.1, 0.1), (0.8, 1.2), 10)),
    ("RandAugment(2, 9)", T.RandAugment(2, 9)),
]


def show(ax, img: np.ndarray, title: str | None = None) -> None:
    """(C, H, W) in [0, 1] -> an axes image (gray for one channel)."""
    img = np.clip(img, 0, 1)
    if img.shape[0] == 1:
        ax.imshow(img[0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(img.transpose(1, 2, 0), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def transforms_figure(digit: np.ndarray, shape: np.ndarray) -> Path:
    rows, cols = len(TRANSFORMS) + 1, 2 * DRAWS
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.15 + 1.5, rows * 1.15))
    for a in axes.ravel():
        a.axis("off")
    for c, (img, name) in enumerate([(digit, "digit"), (shape, "shape")]):
        show(axes[0, c * DRAWS], img, f"{name}: original")
        axes[0, c * DRAWS].axis("on")
    tv.manual_seed(0)
    for r, (title, t) in enumerate(TRANSFORMS, start=1):
        for c, img in enumerate([digit, shape]):
            for k in range(DRAWS):
                ax = axes[r, c * DRAWS + k]
                ax.axis("on")
                show(ax, t(img))
        axes[r, 0].set_ylabel(title, fontsize=7, rotation=0, ha="right", va="center")
    fig.tight_layout()
    path = OUT / "data_transforms.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def mix_figure(images: np.ndarray, labels: np.ndarray) -> Path:
    fig, axes = plt.subplots(3, len(images), figsize=(len(images) * 1.6, 5.4))
    tv.manual_seed(1)
    rows = [("original", images, np.eye(3)[labels])]
    for name, mix in [("MixUp(1.0)", MixUp(1.0, num_classes=3)), ("CutMix(1.0)", CutMix(1.0, num_classes=3))]:
        mixed, target = mix(images, labels)
        rows.append((name, mixed.numpy(), target.numpy()))
    for r, (name, batch, target) in enumerate(rows):
        for i in range(len(images)):
            weights = ", ".join(f"{CLASSES[k][:3]} {w:.2f}" for k, w in enumerate(target[i]) if w > 0)
            show(axes[r, i], batch[i], weights)
        axes[r, 0].set_ylabel(name, fontsize=9)
    fig.tight_layout()
    path = OUT / "data_mix.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def shapes_figure() -> Path:
    ds = shapes(12, image_size=64, seed=3, target="all")
    fig, axes = plt.subplots(2, 12, figsize=(14, 2.8))
    for i in range(12):
        img, t = ds[i]
        show(axes[0, i], img, CLASSES[int(t["labels"])])
        x0, y0, x1, y1 = t["boxes"]
        # pixel (r, c) covers [c, c+1) x [r, r+1), drawn by imshow centred on (c, r)
        axes[0, i].add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, color="yellow", lw=1))
        show(axes[1, i], t["masks"][None].astype(np.float32))
    axes[0, 0].set_ylabel("image, box", fontsize=8)
    axes[1, 0].set_ylabel("mask", fontsize=8)
    fig.tight_layout()
    path = OUT / "data_shapes.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    OUT.mkdir(exist_ok=True)
    train = digits(train=True, size=32)
    digit = train.tensors[0][np.flatnonzero(train.tensors[1] == 7)[0]]   # a 7: flips show
    sample = shapes(8, image_size=32, seed=0, target="all")
    masks = sample.tensors[1]["masks"]
    shape = sample.tensors[0][np.argmax(masks.sum(axis=(1, 2)) * (sample.tensors[1]["labels"] == 2))]  # a big triangle
    for path in (transforms_figure(digit, shape), mix_figure(sample.tensors[0][:4], sample.tensors[1]["labels"][:4]),
                 shapes_figure()):
        print("wrote", path)


if __name__ == "__main__":
    main()
