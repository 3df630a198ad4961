"""Draw the pictures in docs/restoration.md: a crop of camera (the test photo) clean, degraded,
restored by the best classical method and by the network, and the restored-minus-clean error;
and the x-t slice of a magnified video.

    .venv/bin/python docs/make_restoration_figures.py --denoise runs/dncnn/best.ckpt.npz \
        --sr runs/espcn/best.ckpt.npz --magnify   # writes docs/img/restoration_{denoise,sr,magnify}.png
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from skimage.restoration import denoise_tv_chambolle  # noqa: E402

from tinyvision import imaging  # noqa: E402
from tinyvision.metrics import psnr  # noqa: E402
from tinyvision.train import load_checkpoint  # noqa: E402
from tinyvision.train.restore import restore  # noqa: E402
import tinyvision as tv  # noqa: E402

OUT = Path(__file__).parent / "img"
CROP = (slice(60, 252), slice(180, 372))  # the cameraman's head and camera: edges and flat sky


def db(image: np.ndarray, clean: np.ndarray) -> float:
    return float(psnr(tv.tensor(image[None].astype(np.float64)), tv.tensor(clean[None].astype(np.float64))).numpy())


def panel(rows: list[tuple[str, np.ndarray]], clean: np.ndarray, path: Path) -> None:
    fig, axes = plt.subplots(1, len(rows) + 1, figsize=(3 * (len(rows) + 1), 3.6))
    for ax, (title, image) in zip(axes, rows):
        ax.imshow(image[0][CROP], cmap="gray", vmin=0, vmax=1)
        ax.set_title(title if title == "clean" else f"{title}\n{db(image, clean):.2f} dB", fontsize=9)
    restored = rows[-1][1]
    axes[-1].imshow((restored - clean)[0][CROP], cmap="RdBu", vmin=-0.2, vmax=0.2)
    axes[-1].set_title(f"{rows[-1][0]} - clean\n(red +, blue -, +-0.2)", fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=80)
    print(f"wrote {path}")


def magnify_figure(path: Path) -> None:
    """One scan line through the disk over time (an x-t slice, the paper's figure), before and
    after magnification, and the measured centre against the known motion."""
    from tinyvision.imaging.magnify import horizontal_centroid, magnify, moving_blob_video

    video, shift = moving_blob_video(frames=90, size=48, amplitude=0.1, frequency=1.0)
    out = magnify(video, 20, (0.5, 3.0), fps=30)
    row = video.shape[1] // 2
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    for ax, (title, v) in zip(axes, [("input: x-t slice of the middle row", video), ("magnified (alpha 20)", out)]):
        ax.imshow(v[:, row, 8:40].T, cmap="gray", aspect="auto", vmin=0, vmax=1)
        ax.set_xlabel("frame (30 fps)")
        ax.set_ylabel("column")
        ax.set_title(title, fontsize=9)
    t = np.arange(len(shift))
    axes[2].plot(t, shift, label="true motion (0.1 px)")
    axes[2].plot(t, horizontal_centroid(video) - horizontal_centroid(video).mean(), "--", label="measured, input")
    axes[2].plot(t, horizontal_centroid(out) - horizontal_centroid(out).mean(), label="measured, magnified")
    axes[2].plot(t, 21 * shift, ":", label="21 x true motion")
    axes[2].set_xlabel("frame")
    axes[2].set_ylabel("centre offset (px)")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    print(f"wrote {path}")


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--denoise", help="a denoise checkpoint")
    args.add_argument("--sr", help="an sr checkpoint")
    args.add_argument("--magnify", action="store_true", help="the motion-magnification figure")
    a = args.parse_args()
    if a.magnify:
        magnify_figure(OUT / "restoration_magnify.png")
    clean = imaging.load_photo("camera")
    if a.denoise:
        model, config = load_checkpoint(a.denoise)
        noisy = imaging.DegradedImages([clean], lambda p, rng: imaging.gaussian_noise(p, config["sigma"], rng), 0)[0][0]
        tv_best = denoise_tv_chambolle(noisy[0].astype(np.float64), weight=0.08)[None]
        panel([("clean", clean), (f"noisy (sigma {config['sigma']:g})", noisy), ("TV (weight 0.08)", tv_best),
               (config["model"], restore(model, noisy))], clean, OUT / "restoration_denoise.png")
    if a.sr:
        model, config = load_checkpoint(a.sr)
        small = imaging.downsample(clean, config["scale"])
        panel([("clean", clean), (f"bicubic x{config['scale']}", imaging.upsample(small, config["scale"])),
               (config["model"], restore(model, small, config["scale"]))], clean, OUT / "restoration_sr.png")


if __name__ == "__main__":
    main()
