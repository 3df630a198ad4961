"""The ``segment`` task: a class for every pixel, cross-entropy + soft Dice, mean IoU.

The recipe (``SegmentTask.defaults``): a small U-Net (depth 3, width 16, BatchNorm, transposed
convolutions) trained from scratch on ``shapes`` (32 x 32, one circle, square or triangle per
image; 4 classes with the background), Adam at 2e-3 with a cosine schedule, batch 32, loss
cross-entropy + soft Dice. A tenth of the 3,000 training images (seeded) is the validation
split whose mean IoU picks ``best.ckpt``; the 600 test images (another seed) are read once.

``--data shapes-scenes`` trains on the multi-object scenes (64 x 64, 1-5 overlapping shapes).
The models: ``unet`` (``--depth``, ``--width``, ``--up``), ``unet_resnet18``, ``fcn_resnet50``,
``deeplabv3_resnet50`` (their auxiliary head is trained with weight 0.5, as torchvision's recipe).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

import tinyvision as tv
from tinyvision import functional as F
from tinyvision.train.module import TrainModule
from tinyvision.train.tasks import Task, optimizer_factory, scheduler_factory

DATASETS = ("shapes", "shapes-scenes")
LOSSES = ("ce", "dice_ce", "focal")
AUX_WEIGHT = 0.5  # torchvision's segmentation reference recipe weighs the aux loss 0.5
VAL_FRACTION = 0.1


def load_data(spec: str, image_size: int, seed: int) -> tuple[Any, Any, Any]:
    """(train, val, test) of (image (3, S, S) float32, class map (S, S) int64) samples."""
    from tinyvision.data import Subset, random_split, shapes, shapes_scenes

    if spec == "shapes":
        plain = shapes(3000, image_size, seed=0, target="semantic")
        test = shapes(600, image_size, seed=1, target="semantic")
    elif spec == "shapes-scenes":
        plain = shapes_scenes(3000, image_size, seed=0, target="semantic")
        test = shapes_scenes(600, image_size, seed=1, target="semantic")
    else:
        raise SystemExit(f"unknown --data {spec!r} for --task segment; choose one of: {', '.join(DATASETS)}")
    n_val = max(1, int(round(VAL_FRACTION * len(plain))))
    train, val = random_split(plain, [len(plain) - n_val, n_val], seed=seed)
    return Subset(plain, train.indices), val, test


def scores_of(output: Any) -> tv.Tensor:
    """A model's class scores (N, C, H, W): torchvision's segmentation models return a dict."""
    return output["out"] if isinstance(output, dict) else output


def class_segments(classes: np.ndarray) -> dict[str, np.ndarray]:
    """An (H, W) class map as panoptic segments: one segment per non-background class present.
    On ``shapes`` (one object per image) these are exactly the instances, so panoptic quality
    (pq, sq, rq) scores the objects; on scenes, touching objects of one class merge."""
    labels = np.unique(classes[classes > 0])
    return {"masks": classes[None] == labels[:, None, None], "labels": labels}


class Segmenter(TrainModule):
    """A segmentation network + loss + optimizer. ``batch`` is (images (N, 3, H, W), class maps
    (N, H, W)); the validation metrics come from one confusion matrix over the whole split."""

    def __init__(self, model: Any, num_classes: int, optimizer: Any, scheduler: Any = None,
                 loss: str = "dice_ce") -> None:
        super().__init__()
        from tinyvision.metrics import JaccardIndex, PanopticQuality

        if loss not in LOSSES:
            raise ValueError(f"--loss must be one of {LOSSES}, got {loss!r}")
        self.model, self.loss_name = model, loss
        self._optimizer, self._scheduler = optimizer, scheduler
        self.metric = JaccardIndex(num_classes)
        self.panoptic = PanopticQuality()

    def forward(self, x: tv.Tensor) -> tv.Tensor:
        return scores_of(self.model(x))

    def loss_fn(self, scores: tv.Tensor, target: tv.Tensor) -> tv.Tensor:
        if self.loss_name == "ce":
            return F.cross_entropy(scores, target)
        if self.loss_name == "focal":
            return F.focal_loss(scores, target)
        return F.dice_ce_loss(scores, target)

    def _step(self, batch: Any) -> tuple[dict[str, Any], tv.Tensor]:
        x, y = batch
        output = self.model(x)
        scores = scores_of(output)
        loss = self.loss_fn(scores, y)
        if isinstance(output, dict) and "aux" in output:
            loss = loss + AUX_WEIGHT * self.loss_fn(output["aux"], y)
        pred = scores.detach().argmax(1)
        return {"loss": loss, "pixel_acc": float((pred.numpy() == y.numpy()).mean())}, pred

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        return self._step(batch)[0]

    def validation_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        metrics, pred = self._step(batch)
        self.metric.update(pred, batch[1])
        pred, target = pred.numpy(), batch[1].numpy()
        self.panoptic.update([class_segments(p) for p in pred], [class_segments(t) for t in target])
        return metrics

    def on_validation_epoch_start(self) -> None:
        self.metric.reset()
        self.panoptic.reset()

    def on_validation_epoch_end(self) -> dict[str, float]:
        iou = self.metric.per_class()
        out = {"mean_iou": self.metric.compute()}
        out.update({f"iou_{c}": float(v) for c, v in enumerate(iou)})
        out.update(self.panoptic.compute())
        return out

    def configure_optimizers(self) -> Any:
        optimizer = self._optimizer(self.model.parameters())
        if self._scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self._scheduler(optimizer)}


class SegmentTask(Task):
    """Semantic segmentation (a U-Net on ``shapes`` by default)."""

    default_model = "unet"
    default_data = "shapes"
    defaults = {"epochs": 6, "batch_size": 32, "optimizer": "adam", "lr": 2e-3, "weight_decay": 0.0,
                "schedule": "cosine", "image_size": None, "loss": "dice_ce", "depth": 3, "width": 16,
                "up": "transpose"}
    monitor = "mean_iou"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--loss", choices=LOSSES, default=None,
                            help="per-pixel loss (default dice_ce: cross-entropy + soft Dice)")
        parser.add_argument("--depth", type=int, default=None, help="unet: levels down (default 3)")
        parser.add_argument("--width", type=int, default=None, help="unet: channels at the top level (default 16)")
        parser.add_argument("--up", choices=("transpose", "bilinear"), default=None,
                            help="unet: upsampling (default transpose)")

    def datasets(self, config: dict[str, Any]) -> tuple[Any, Any, Any]:
        if config["data"] not in DATASETS:
            raise SystemExit(f"unknown --data {config['data']!r} for --task segment; "
                             f"choose one of: {', '.join(DATASETS)}")
        if config["image_size"] is None:
            config["image_size"] = 32 if config["data"] == "shapes" else 64
        config["num_classes"] = 4
        self.model_kwargs(config, None)  # a model that cannot take these images: say so before drawing data
        return load_data(config["data"], config["image_size"], config["seed"])

    def model_kwargs(self, config: dict[str, Any], train_set: Any) -> dict[str, Any]:
        name, size = config["model"], config["image_size"]
        kwargs: dict[str, Any] = {"num_classes": config["num_classes"]}
        if name == "unet":
            kwargs.update(depth=config["depth"], width=config["width"], up=config["up"])
            stride = 2 ** config["depth"]
        elif name == "unet_resnet18":
            kwargs.update(up=config["up"])
            stride = 32
        elif name.startswith(("fcn_", "deeplabv3_")):
            kwargs.update(aux_loss=True)
            stride = 1
        else:
            raise SystemExit(f"--task segment takes unet, unet_resnet18, fcn_resnet50, fcn_resnet101 or "
                             f"deeplabv3_resnet50, got --model {name}")
        if size % stride:
            raise SystemExit(f"--model {name} needs an image size divisible by {stride}, got {size}")
        return kwargs

    def module(self, model: Any, config: dict[str, Any]) -> TrainModule:
        return Segmenter(model, config["num_classes"], optimizer_factory(config), scheduler_factory(config),
                         loss=config["loss"])

    def predict(self, model: Any, config: dict[str, Any], args: argparse.Namespace) -> None:
        """Write IMAGE_mask.png (the class map, class c as grey level c * 255 / (C - 1)) and
        IMAGE_overlay.png (the image with the classes in colour) next to ``--out`` or the image."""
        from PIL import Image

        from tinyvision.data.folder import load_image
        from tinyvision.data.functional import resize
        from tinyvision.viz.segmentation import colorize, overlay

        image = load_image(args.image)
        size = config["image_size"]
        image = resize(image, (size, size))
        model.eval()
        with tv.no_grad():
            pred = scores_of(model(tv.tensor(image[None]))).argmax(1).numpy()[0]
        out_dir = Path(getattr(args, "out", None) or Path(args.image).parent)
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = Path(args.image).stem
        classes = config["num_classes"]
        mask_path, overlay_path = out_dir / f"{stem}_mask.png", out_dir / f"{stem}_overlay.png"
        Image.fromarray((pred * (255 // max(classes - 1, 1))).astype(np.uint8)).save(mask_path)
        Image.fromarray(overlay(image, colorize(pred, classes))).save(overlay_path)
        counts = np.bincount(pred.ravel(), minlength=classes) / pred.size
        print("class shares: " + "  ".join(f"{c}: {v:.3f}" for c, v in enumerate(counts)))
        print(f"wrote {mask_path} and {overlay_path}")


TASKS = {"segment": SegmentTask}
