"""Draw the pictures in docs/detection.md: IoU and GIoU, NMS step by step, RoIPool's
quantisation against RoIAlign's sample points, the focal loss curves, and a RetinaNet's anchors
matched to the boxes of a shapes scene.

    .venv/bin/python docs/make_detection_figures.py      # writes docs/img/detection_*.png
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

import tinyvision as tv  # noqa: E402
from tinyvision import ops  # noqa: E402

OUT = Path(__file__).parent / "img"


def box(ax, b, colour, label=None, style="-", width=2.0):
    x1, y1, x2, y2 = b
    ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linestyle=style, linewidth=width))
    if label:
        ax.text(x1 + 0.1, y1 - 0.25, label, color=colour, fontsize=9)


def iou_figure() -> None:
    pairs = [([1, 1, 5, 4], [3, 2, 7, 6]), ([1, 1, 3, 3], [5, 4, 7, 7])]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.8))
    for ax, (a, b) in zip(axes, pairs):
        ta, tb = tv.tensor([a], dtype=tv.float64), tv.tensor([b], dtype=tv.float64)
        iou = ops.box_iou(ta, tb).item()
        giou = ops.generalized_box_iou(ta, tb).item()
        c = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
        box(ax, c, "grey", "C (enclosing)", "--", 1.2)
        box(ax, a, "tab:red", "A")
        box(ax, b, "tab:blue", "B")
        ix = [max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])]
        if ix[2] > ix[0] and ix[3] > ix[1]:
            ax.add_patch(Rectangle(ix[:2], ix[2] - ix[0], ix[3] - ix[1], color="tab:purple", alpha=0.3))
        ax.set_xlim(0, 8), ax.set_ylim(8, 0), ax.set_aspect("equal")
        ax.set_title(f"IoU = {iou:.3f}   GIoU = {giou:.3f}", fontsize=10)
    fig.suptitle("IoU is 0 for every pair that does not overlap; GIoU still says how far apart they are", fontsize=10)
    fig.savefig(OUT / "detection_iou.png", dpi=110, bbox_inches="tight")


def nms_figure() -> None:
    boxes = np.array([[10, 10, 40, 42], [12, 8, 43, 40], [8, 12, 38, 44], [50, 15, 75, 45], [52, 18, 78, 44],
                      [30, 30, 60, 58], [11, 11, 41, 41]], dtype=np.float64)
    scores = np.array([0.95, 0.90, 0.60, 0.85, 0.70, 0.55, 0.80])
    keep = ops.nms(tv.tensor(boxes), tv.tensor(scores), 0.5).numpy()
    order = np.argsort(-scores, kind="stable")
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.6))
    suppressed: set[int] = set()
    panels = [("all boxes, by score", None)]
    kept_so_far = []
    iou = ops.box_iou(tv.tensor(boxes), tv.tensor(boxes)).numpy()
    for step, i in enumerate(order):
        if i in suppressed:
            continue
        kept_so_far.append(i)
        newly = [j for j in order[step + 1:] if j not in suppressed and iou[i, j] > 0.5]
        suppressed.update(newly)
        panels.append((f"keep {scores[i]:.2f}; it removes " + (", ".join(f"{scores[j]:.2f}" for j in newly) or "none"),
                       (list(kept_so_far), set(suppressed))))
    panels = panels[:3] + [("result (IoU threshold 0.5)", (list(keep), set(range(len(boxes))) - set(keep)))]
    for ax, (title, state) in zip(axes, panels):
        for j, (b, s) in enumerate(zip(boxes, scores)):
            kept = state is not None and j in state[0]
            gone = state is not None and j in state[1]
            colour = "tab:green" if kept else ("lightgrey" if gone else "tab:blue")
            box(ax, b, colour, f"{s:.2f}", ":" if gone else "-", 2.5 if kept else 1.2)
        ax.set_xlim(0, 85), ax.set_ylim(65, 0), ax.set_aspect("equal"), ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(title, fontsize=9)
    fig.savefig(OUT / "detection_nms.png", dpi=110, bbox_inches="tight")


def roi_figure() -> None:
    """A 2x2 output over a RoI with fractional corners on an 8x8 feature map."""
    roi = [1.3, 1.6, 6.1, 5.4]
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.4))
    for ax in axes:
        for k in range(9):
            ax.axhline(k, color="lightgrey", lw=0.8), ax.axvline(k, color="lightgrey", lw=0.8)
        box(ax, roi, "tab:red", "RoI", "-", 2)
        ax.set_xlim(0, 8), ax.set_ylim(8, 0), ax.set_aspect("equal")
    # RoIPool: round the corners, then split into bins with floor/ceil (kernels/reference/roi_pool.py)
    x1, y1, x2, y2 = (int(np.floor(v + 0.5)) for v in roi)
    w, h = x2 - x1 + 1, y2 - y1 + 1
    for p in range(2):
        for q in range(2):
            ys, ye = y1 + int(np.floor(p * h / 2)), y1 + int(np.ceil((p + 1) * h / 2))
            xs, xe = x1 + int(np.floor(q * w / 2)), x1 + int(np.ceil((q + 1) * w / 2))
            axes[0].add_patch(Rectangle((xs, ys), xe - xs, ye - ys, color=f"C{2 * p + q}", alpha=0.25))
    axes[0].set_title("RoIPool: corners rounded to pixels, bins rounded again\n(the pooled cells miss and overlap the RoI)",
                      fontsize=9)
    # RoIAlign: 2x2 regular samples per bin, each read bilinearly (aligned=False, sampling_ratio=2)
    bw, bh = (roi[2] - roi[0]) / 2, (roi[3] - roi[1]) / 2
    for p in range(2):
        for q in range(2):
            axes[1].add_patch(Rectangle((roi[0] + q * bw, roi[1] + p * bh), bw, bh, fill=False, edgecolor=f"C{2 * p + q}",
                                        lw=1.5, linestyle="--"))
            for i in range(2):
                for j in range(2):
                    axes[1].plot(roi[0] + q * bw + (j + 0.5) * bw / 2, roi[1] + p * bh + (i + 0.5) * bh / 2, "o",
                                 color=f"C{2 * p + q}")
    axes[1].set_title("RoIAlign: exact bins, 2x2 sample points each,\nread by bilinear interpolation (no rounding)",
                      fontsize=9)
    fig.savefig(OUT / "detection_roi.png", dpi=110, bbox_inches="tight")


def focal_figure() -> None:
    p = np.linspace(0.01, 1, 200)
    logits = tv.tensor(np.log(p / (1 - p + 1e-12)))
    target = tv.ones(len(p), dtype=tv.float64)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for gamma in (0, 0.5, 1, 2, 5):
        loss = ops.sigmoid_focal_loss(logits, target, alpha=-1, gamma=gamma).numpy()
        ax.plot(p, loss, label=f"gamma = {gamma}" + (" (cross-entropy)" if gamma == 0 else ""))
    ax.axvspan(0.6, 1.0, color="lightgrey", alpha=0.4)
    ax.text(0.62, 3.5, "well-classified\nexamples", fontsize=9)
    ax.set_xlabel("probability of the true class, p_t"), ax.set_ylabel("loss"), ax.set_ylim(0, 5)
    ax.legend(fontsize=8)
    ax.set_title("Focal loss -(1 - p_t)^gamma log(p_t)", fontsize=10)
    fig.savefig(OUT / "detection_focal.png", dpi=110, bbox_inches="tight")


def anchors_figure() -> None:
    from tinyvision.viz.anchors import run_anchors

    run_anchors(argparse.Namespace(checkpoint=None, image_size=None, out=str(OUT)))
    (OUT / "anchors.png").replace(OUT / "detection_anchors.png")


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    iou_figure(), nms_figure(), roi_figure(), focal_figure(), anchors_figure()
    print("wrote docs/img/detection_*.png")
