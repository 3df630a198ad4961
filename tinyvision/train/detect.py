"""The ``detect`` and ``instance`` tasks: boxes (RetinaNet) and instance masks (Mask R-CNN) on
scenes of overlapping shapes, scored with COCO mAP.

The recipe (``DetectTask.defaults``) is what ``tinyvision train --task detect`` runs with
nothing else: RetinaNet-ResNet18-FPN, random init, on ``shapes`` scenes (1-5 circles, squares
and triangles on a 64x64 image, occluding each other; tinyvision.data.shapes_scenes), AdamW at
5e-4 with a cosine schedule, 3 epochs of 1,800 scenes (about 20 minutes on 2 cores). The images
stay 64x64 (no rescaling), so the anchors are scaled down to the objects (10-26 px): base sizes
8-128 on P3-P7 instead of 32-512; the FPN and heads are 128 wide instead of 256 (a quarter of the
head's work), and the heads have GroupNorm as torchvision's v2 head (from scratch, the v1 head's
sigma = 0.01 convs shrink the signal so much that its classifier hardly moves for the first
hundreds of steps). A tenth of the training scenes (seeded) is the validation split whose mAP@0.5 picks
best.ckpt; the test scenes come from another seed and are read once, at the end.

A batch is ``(images (N, 3, H, W), targets)``: images of one size stack, the targets stay a list
of dicts (``boxes`` (n_i, 4) xyxy, ``labels`` (n_i,), ``masks`` (n_i, H, W)), one per image.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

import tinyvision as tv
from tinyvision.metrics.detection import MeanAveragePrecision
from tinyvision.train.module import TrainModule
from tinyvision.train.tasks import Task, optimizer_factory, scheduler_factory

TRAIN_SCENES, TEST_SCENES, VAL_FRACTION = 2000, 500, 0.1
ANCHOR_SIZES = (8, 16, 32, 64, 128)       # P3..P7 for 10-26 px objects on 64x64 images


def collate(samples: list[tuple[Any, dict]]) -> tuple[tv.Tensor, list[dict]]:
    """Detection collate: images (of one size) stacked, targets kept per image as Tensors."""
    images = tv.tensor(np.stack([np.asarray(image) for image, _ in samples]))
    targets = [{k: tv.tensor(np.asarray(v)) for k, v in target.items() if k in ("boxes", "labels", "masks")}
               for _, target in samples]
    return images, targets


def to_numpy(items: list[dict]) -> list[dict]:
    return [{k: v.numpy() if isinstance(v, tv.Tensor) else np.asarray(v) for k, v in d.items()} for d in items]


class Detector(TrainModule):
    """A torchvision-style detector (``model(images, targets)`` -> losses in train mode,
    ``model(images)`` -> detections in eval mode) + its optimizer + COCO mAP on validation."""

    def __init__(self, model: Any, optimizer: Any, scheduler: Any = None, iou_type: tuple[str, ...] = ("bbox",)) -> None:
        super().__init__()
        self.model = model
        self._optimizer, self._scheduler = optimizer, scheduler
        self.iou_type = iou_type
        self.metric = MeanAveragePrecision(iou_type=iou_type)

    def forward(self, images: Any, targets: Any = None) -> Any:
        return self.model(images, targets)

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        images, targets = batch
        losses = self.model(images, targets)
        total = sum(list(losses.values())[1:], list(losses.values())[0])
        # RetinaNet names its losses "classification", ...; the R-CNNs "loss_classifier", ...
        return {"loss": total, **{(k if k.startswith("loss_") else f"loss_{k}"): v.detach() for k, v in losses.items()}}

    def validation_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        images, targets = batch
        detections = self.model(images)
        preds = to_numpy(detections)
        if "segm" in self.iou_type:
            for p in preds:  # soft masks pasted into the image -> binary
                p["masks"] = p["masks"][:, 0] > 0.5 if p["masks"].ndim == 4 else p["masks"] > 0.5
        self.metric.update(preds, to_numpy(targets))
        return {}

    def on_validation_epoch_start(self) -> None:
        self.metric.reset()

    def on_validation_epoch_end(self) -> dict[str, float]:
        result = self.metric.compute()
        keys = ("map", "map_50", "map_75")
        if len(self.iou_type) == 1:
            return {k: result[k] for k in keys}
        return {**{k: result[f"bbox_{k}"] for k in keys}, **{f"mask_{k}": result[f"segm_{k}"] for k in keys}}

    def configure_optimizers(self) -> Any:
        optimizer = self._optimizer([p for p in self.model.parameters() if p.requires_grad])
        if self._scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self._scheduler(optimizer)}


def scene_datasets(config: dict[str, Any]) -> tuple[Any, Any, Any]:
    from tinyvision.data import shapes_scenes
    from tinyvision.train.classify import hold_out

    if config["data"] != "shapes":
        raise SystemExit(f"--data {config['data']!r}: the detection tasks train on 'shapes' (multi-object scenes)")
    size = config["image_size"] = config["image_size"] or 64
    plain = shapes_scenes(TRAIN_SCENES, size, seed=0)
    train, val = hold_out(plain, plain, VAL_FRACTION, config["seed"])
    config["num_classes"] = 4        # background + circle, square, triangle
    return train, val, shapes_scenes(TEST_SCENES, size, seed=1)


def draw_detections(image: np.ndarray, detections: dict, names: tuple[str, ...], path: Path,
                    score_thresh: float = 0.3) -> Path:
    """The image with each detection's box, class name and score (and mask, if any)."""
    from matplotlib.patches import Rectangle

    from tinyvision.viz.plot import _figure, _save, _show_image

    fig = _figure((5, 5))
    ax = fig.add_subplot(1, 1, 1)
    _show_image(ax, image)
    colours = ("tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple")
    for i, (box, score, label) in enumerate(zip(detections["boxes"], detections["scores"], detections["labels"])):
        if score < score_thresh:
            continue
        x1, y1, x2, y2 = box
        colour = colours[int(label) % len(colours)]
        # boxes are in pixel edges (x2 = last column + 1); imshow centres pixel j at j
        ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linewidth=2))
        name = names[int(label)] if int(label) < len(names) else str(int(label))
        ax.text(x1, y1 - 1, f"{name} {score:.2f}", color="white", fontsize=8,
                bbox=dict(facecolor=colour, alpha=0.8, pad=1, edgecolor="none"))
        if "masks" in detections:
            m = np.asarray(detections["masks"][i])
            m = m[0] if m.ndim == 3 else m
            ax.imshow(np.ma.masked_where(m < 0.5, m), alpha=0.35, cmap="autumn", interpolation="nearest")
    ax.set_axis_off()
    return _save(fig, path)


class DetectTask(Task):
    """Object detection: RetinaNet-ResNet18-FPN on shapes scenes, COCO mAP (see the module docstring)."""

    default_model = "retinanet_resnet18_fpn"
    default_data = "shapes"
    defaults = {"epochs": 3, "batch_size": 16, "optimizer": "adamw", "lr": 5e-4, "weight_decay": 1e-4,
                "schedule": "cosine", "image_size": None}
    monitor = "map_50"
    iou_type: tuple[str, ...] = ("bbox",)

    def datasets(self, config: dict[str, Any]) -> tuple[Any, Any, Any]:
        return scene_datasets(config)

    def model_kwargs(self, config: dict[str, Any], train_set: Any) -> dict[str, Any]:
        size = config["image_size"]
        kwargs: dict[str, Any] = {"num_classes": config["num_classes"]}
        if config["model"].startswith("yolo"):    # a grid on the image as it is: no resizing, no anchors
            return kwargs
        kwargs.update(min_size=size, max_size=size)
        if config["model"].startswith("retinanet"):
            kwargs.update(anchor_sizes=list(ANCHOR_SIZES), fpn_channels=128, head_norm=True)
        elif config["model"].startswith(("fasterrcnn", "maskrcnn")):   # one anchor size per level P2..P6
            kwargs.update(anchor_sizes=[8, 16, 32, 64, 128], fpn_channels=128)
        return kwargs

    def module(self, model: Any, config: dict[str, Any]) -> TrainModule:
        return Detector(model, optimizer_factory(config), scheduler_factory(config), self.iou_type)

    def collate(self) -> Any:
        return collate

    def predict(self, model: Any, config: dict[str, Any], args: argparse.Namespace) -> None:
        from tinyvision.data.shapes import SEGMENTATION_CLASSES
        from tinyvision.train.checkpoint import prepare_image

        image, steps = prepare_image(args.image, 3, config["image_size"])
        print("preprocessing: " + "; ".join(steps))
        model.eval()
        with tv.no_grad():
            detections = to_numpy(model([tv.tensor(image)]))[0]
        shown = 0
        for box, score, label in zip(detections["boxes"], detections["scores"], detections["labels"]):
            if shown < args.topk:
                print(f"{SEGMENTATION_CLASSES[int(label)]:>8} {score:.3f}  box "
                      + " ".join(f"{v:.1f}" for v in box))
                shown += 1
        top = {k: v[:args.topk] for k, v in detections.items()}     # draw what was printed
        path = draw_detections(image, top, SEGMENTATION_CLASSES, Path(f"{Path(args.image).stem}_{self.name}.png"),
                               score_thresh=0.0)
        print(f"wrote {path}")


class InstanceTask(DetectTask):
    """Instance segmentation: Mask R-CNN-ResNet18-FPN on shapes scenes, box and mask COCO mAP."""

    default_model = "maskrcnn_resnet18_fpn"
    iou_type = ("bbox", "segm")


TASKS = {"detect": DetectTask, "instance": InstanceTask}
