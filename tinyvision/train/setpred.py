"""Set-prediction tasks: ``detr`` (DETR on shapes scenes, COCO mAP; no anchors, no NMS) and
``panoptic`` (MaskFormer-style mask classification on the same scenes, panoptic quality).

The recipe (``DETRTask.defaults``) is what ``tinyvision train --task detr`` runs with nothing
else: DETR-ResNet18 from random init on the ``shapes`` scenes of the ``detect`` task (64x64
images with 1-5 occluding circles, squares and triangles; the same train / validation / test
splits), scored with the same COCO mAP; mAP@0.5 on the validation split picks best.ckpt.

DETR is known to converge slowly (500 epochs on COCO). The recipe uses these remedies, all
options of the task so that each can be switched back (see docs/set_prediction.md):

* few queries: 10 instead of 100 (at most 5 objects per scene), so that far fewer queries
  are trained only towards "no object" and each query is matched more often;
* a small transformer: d_model 128, 3 encoder + 3 decoder layers, FFN 512, no dropout (on 1,800
  scenes dropout only slows the fit; the reference's 256 / 6 + 6 / 2048 / 0.1 is for COCO);
* one learning rate for everything, 2e-4 with AdamW on batches of 8, twice the reference's
  transformer rate (1e-4 on batches of 64; the reference trains a pretrained backbone at 1e-5,
  here the backbone starts from scratch); gradients clipped to norm 0.1 as the reference;
* a stride-16 feature map: on a 64x64 image layer4 at stride 32 is 2x2, too coarse to tell five
  objects apart, so the stem's max-pool is dropped (``stem_pool=False``) and layer4 is 4x4
  (DETR-DC5's dilation does the same for Bottleneck trunks; ResNet18's BasicBlocks have none).

A batch is ``(images (N, 3, H, W), targets)`` with torchvision-style targets (``boxes`` xyxy in
pixels, ``labels`` 1..3); the criterion gets them as DETR wants them: boxes normalised cxcywh,
labels as they are (class 4 = num_classes is "no object", 0 is never used).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

import tinyvision as tv
from tinyvision.models.detection.detr_criterion import SetCriterion
from tinyvision.models.detection.detr_matcher import HungarianMatcher
from tinyvision.models.detection.mask_matching import MaskSetCriterion
from tinyvision.train.detect import Detector, collate, scene_datasets, to_numpy
from tinyvision.train.module import TrainModule
from tinyvision.train.tasks import Task, optimizer_factory, scheduler_factory


def detr_targets(targets: list[dict], size: tuple[int, int]) -> list[dict]:
    """torchvision-style targets (xyxy pixels) -> DETR's (normalised cxcywh, as numpy)."""
    h, w = size
    out = []
    for t in targets:
        boxes = np.asarray(t["boxes"].numpy() if isinstance(t["boxes"], tv.Tensor) else t["boxes"], np.float64)
        boxes = boxes.reshape(-1, 4) / np.array([w, h, w, h])
        cxcywh = np.concatenate([(boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]], 1)
        labels = t["labels"].numpy() if isinstance(t["labels"], tv.Tensor) else np.asarray(t["labels"])
        out.append({"boxes": cxcywh, "labels": labels.astype(np.int64)})
    return out


class SetDetector(Detector):
    """DETR + its SetCriterion; the optimizer and the COCO mAP on validation are the ``detect``
    task's (every query is a detection; no NMS)."""

    def __init__(self, model: Any, criterion: SetCriterion, optimizer: Any, scheduler: Any = None) -> None:
        super().__init__(model, optimizer, scheduler)
        self.criterion = criterion

    def forward(self, images: Any) -> Any:
        return self.model(images)

    logged = ("loss_ce", "loss_bbox", "loss_giou")

    def targets(self, targets: list[dict], size: tuple[int, int]) -> list[dict]:
        return detr_targets(targets, size)

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        images, targets = batch
        losses = self.criterion(self.model(images), self.targets(targets, images.shape[-2:]))
        return {"loss": self.criterion.total(losses), **{k: losses[k].detach() for k in self.logged}}

    def validation_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        images, targets = batch
        with tv.no_grad():
            outputs = self.model(images)
        detections = self.model.postprocess(outputs, [tuple(images.shape[-2:])] * images.shape[0])
        self.metric.update(detections, to_numpy(targets))
        return {}


class DETRTask(Task):
    """Set-prediction detection: DETR-ResNet18 on shapes scenes, COCO mAP (see the module docstring)."""

    default_model = "detr_resnet18"
    default_data = "shapes"
    defaults = {"epochs": 8, "batch_size": 8, "optimizer": "adamw", "lr": 2e-4, "weight_decay": 1e-4,
                "schedule": "cosine", "image_size": None, "grad_clip_norm": 0.1, "num_queries": 10, "hidden_dim": 128,
                "enc_layers": 3, "dec_layers": 3, "dim_feedforward": 512, "dropout": 0.0, "eos_coef": 0.1}
    monitor = "map_50"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--num-queries", type=int, default=None, help="object queries (default 10)")
        parser.add_argument("--hidden-dim", type=int, default=None, help="transformer width (default 128)")
        parser.add_argument("--enc-layers", type=int, default=None, help="encoder layers (default 3)")
        parser.add_argument("--dec-layers", type=int, default=None, help="decoder layers (default 3)")
        parser.add_argument("--eos-coef", type=float, default=None, help="weight of the no-object class (0.1)")

    def datasets(self, config: dict[str, Any]) -> tuple[Any, Any, Any]:
        return scene_datasets(config)

    def model_kwargs(self, config: dict[str, Any], train_set: Any) -> dict[str, Any]:
        if config["num_queries"] < 5:
            raise ValueError(f"--num-queries {config['num_queries']}: shapes scenes hold up to 5 objects, and "
                             "every object needs its own query")
        return {"num_classes": config["num_classes"], "num_queries": config["num_queries"],
                "hidden_dim": config["hidden_dim"], "enc_layers": config["enc_layers"],
                "dec_layers": config["dec_layers"], "dim_feedforward": config["dim_feedforward"],
                "dropout": config["dropout"], "stem_pool": False}

    def module(self, model: Any, config: dict[str, Any]) -> TrainModule:
        criterion = SetCriterion(config["num_classes"], HungarianMatcher(1, 5, 2), eos_coef=config["eos_coef"])
        return SetDetector(model, criterion, optimizer_factory(config), scheduler_factory(config))

    def collate(self) -> Any:
        return collate

    def predict(self, model: Any, config: dict[str, Any], args: argparse.Namespace) -> None:
        from tinyvision.data.shapes import SEGMENTATION_CLASSES
        from tinyvision.train.checkpoint import prepare_image
        from tinyvision.viz.detr import decoder_attention, plot_decoder_attention

        image, steps = prepare_image(args.image, 3, config["image_size"])
        print("preprocessing: " + "; ".join(steps))
        detections, attention = decoder_attention(model, image)
        order = np.argsort(-detections["scores"], kind="stable")
        for i in order[:args.topk]:
            print(f"{SEGMENTATION_CLASSES[int(detections['labels'][i])]:>8} {detections['scores'][i]:.3f}  box "
                  + " ".join(f"{v:.1f}" for v in detections["boxes"][i]))
        path = plot_decoder_attention(image, detections, attention, Path(f"{Path(args.image).stem}_{self.name}.png"),
                                      names=SEGMENTATION_CLASSES)
        print(f"wrote {path} (the image, then each confident query's box and decoder attention)")


# ----------------------------------------------------------------------------- panoptic

class MaskClassifier(SetDetector):
    """MaskFormer + its MaskSetCriterion + panoptic quality (tinyvision.metrics) on validation."""

    logged = ("loss_ce", "loss_mask", "loss_dice")

    def __init__(self, model: Any, criterion: MaskSetCriterion, optimizer: Any, scheduler: Any = None) -> None:
        from tinyvision.metrics import PanopticQuality

        super().__init__(model, criterion, optimizer, scheduler)
        self.metric = PanopticQuality()

    def targets(self, targets: list[dict], size: tuple[int, int]) -> list[dict]:
        return targets                       # labels and masks, as the criterion takes them

    def validation_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        images, targets = batch
        with tv.no_grad():
            outputs = self.model(images)
        self.metric.update(self.model.panoptic(outputs, tuple(images.shape[-2:])), to_numpy(targets))
        return {}

    def on_validation_epoch_end(self) -> dict[str, float]:
        return self.metric.compute()


class PanopticTask(Task):
    """Panoptic segmentation by mask classification: MaskFormer-ResNet18 on shapes scenes, PQ.

    Every shape is a "thing" (the background is unlabelled, as the metric's docstring says);
    the recipe mirrors the detr task's (10 queries, a 128-wide 3-layer decoder, AdamW 2e-4 on
    batches of 8, clipping at 0.1) with masks at stride 2 (``stem_pool=False``: 32x32 masks)."""

    default_model = "maskformer_resnet18"
    default_data = "shapes"
    defaults = {"epochs": 8, "batch_size": 8, "optimizer": "adamw", "lr": 2e-4, "weight_decay": 1e-4,
                "schedule": "cosine", "image_size": None, "grad_clip_norm": 0.1, "num_queries": 10, "hidden_dim": 128,
                "mask_dim": 64, "dec_layers": 3, "eos_coef": 0.1}
    monitor = "pq"

    def datasets(self, config: dict[str, Any]) -> tuple[Any, Any, Any]:
        return scene_datasets(config)

    def model_kwargs(self, config: dict[str, Any], train_set: Any) -> dict[str, Any]:
        if config["num_queries"] < 5:
            raise ValueError(f"num_queries {config['num_queries']}: shapes scenes hold up to 5 objects")
        return {"num_classes": config["num_classes"], "num_queries": config["num_queries"],
                "hidden_dim": config["hidden_dim"], "mask_dim": config["mask_dim"], "dec_layers": config["dec_layers"],
                "stem_pool": False}

    def module(self, model: Any, config: dict[str, Any]) -> TrainModule:
        return MaskClassifier(model, MaskSetCriterion(config["num_classes"], eos_coef=config["eos_coef"]),
                              optimizer_factory(config), scheduler_factory(config))

    def collate(self) -> Any:
        return collate


# ----------------------------------------------------------------------------- prompt

def click_inside(mask: np.ndarray, rng: np.random.Generator | None = None) -> tuple[float, float]:
    """A click (x, y) on ``mask`` (H, W): a random pixel of it (training, as the paper's simulated
    clicks), or with ``rng=None`` the pixel farthest from its boundary (evaluation, as SAM's)."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        raise ValueError("click_inside: the mask is empty")
    if rng is not None:
        k = int(rng.integers(len(ys)))
        return float(xs[k]), float(ys[k])
    from scipy.ndimage import distance_transform_edt

    depth = distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(np.argmax(depth), depth.shape)
    return float(x), float(y)


def mask_iou(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """IoU of binary masks (..., H, W) -> (...,); an empty union counts as 1."""
    inter = (pred & truth).sum((-2, -1))
    union = (pred | truth).sum((-2, -1))
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


class PromptModule(TrainModule):
    """The promptable segmenter trained with one simulated click per image, as SAM's interactive
    training starts: a random pixel of a random object (a box around it for ``box_fraction`` of
    the samples). Loss (SAM's): 20 * focal + Dice of the best of the 3 masks (only the best is
    trained, so the masks can specialise on the click's readings), + MSE of the predicted IoU.
    Validation: one click per object at the point farthest from its boundary; ``miou`` is the
    mean IoU of the mask with the highest predicted IoU."""

    def __init__(self, model: Any, optimizer: Any, scheduler: Any = None, box_fraction: float = 0.25,
                 seed: int = 0) -> None:
        super().__init__()
        self.model, self._optimizer, self._scheduler = model, optimizer, scheduler
        self.box_fraction = box_fraction
        self.rng = np.random.default_rng(seed)
        self.ious: list[float] = []

    def forward(self, images: Any, points: Any = None, boxes: Any = None) -> Any:
        return self.model(images, points=points, boxes=boxes)

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        from tinyvision.ops import sigmoid_focal_loss

        images, targets = batch
        truth, clicks = [], []
        for t in targets:
            masks = t["masks"].numpy()
            truth.append(masks[int(self.rng.integers(len(masks)))])
            clicks.append(click_inside(truth[-1], self.rng))
        truth = np.stack(truth)
        if self.rng.random() < self.box_fraction:   # a box prompt: the object's extent, jittered by up to 2 px
            boxes = np.array([[x.min(), y.min(), x.max() + 1, y.max() + 1] for y, x in (np.nonzero(m) for m in truth)],
                             dtype=np.float64)
            size = truth.shape[-1]
            boxes = np.clip(boxes + self.rng.uniform(-2, 2, boxes.shape), 0, size)
            masks, iou_pred = self.model(images, boxes=boxes)
        else:
            masks, iou_pred = self.model(images, points=(np.array(clicks)[:, None], np.ones((len(clicks), 1), np.int64)))
        n, k = masks.shape[:2]
        t = tv.tensor(np.broadcast_to(truth[:, None], masks.shape).astype(masks.dtype))
        focal = sigmoid_focal_loss(masks, t).reshape(n, k, -1).mean(-1)
        s = masks.sigmoid().reshape(n, k, -1)
        tf = t.reshape(n, k, -1)
        dice = 1 - (2 * (s * tf).sum(-1) + 1) / (s.sum(-1) + tf.sum(-1) + 1)
        per_mask = 20 * focal + dice                                           # (N, K)
        best = per_mask.detach().numpy().argmin(1)
        mask_loss = per_mask[np.arange(n), best].mean()
        actual = mask_iou(masks.detach().numpy() > 0, np.broadcast_to(truth[:, None], masks.shape))
        iou_loss = ((iou_pred - tv.tensor(actual.astype(iou_pred.dtype))) ** 2).mean()
        return {"loss": mask_loss + iou_loss, "loss_mask": mask_loss.detach(), "loss_iou": iou_loss.detach()}

    def validation_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        images, targets = batch
        index, clicks, truth = [], [], []
        for i, t in enumerate(targets):
            for m in t["masks"].numpy():
                index.append(i)
                clicks.append(click_inside(m))
                truth.append(m)
        with tv.no_grad():
            masks, iou_pred = self.model(images[np.array(index)], points=(np.array(clicks)[:, None],
                                                                          np.ones((len(clicks), 1), np.int64)))
        chosen = masks.numpy()[np.arange(len(index)), iou_pred.numpy().argmax(1)] > 0
        self.ious.extend(mask_iou(chosen, np.stack(truth)).tolist())
        return {}

    def on_validation_epoch_start(self) -> None:
        self.ious = []

    def on_validation_epoch_end(self) -> dict[str, float]:
        return {"miou": float(np.mean(self.ious)) if self.ious else float("nan")}

    configure_optimizers = Detector.configure_optimizers   # self._optimizer / self._scheduler, as there


class PromptTask(Task):
    """Promptable segmentation: sam_resnet18 on shapes scenes, one click -> a mask; mean IoU."""

    default_model = "sam_resnet18"
    default_data = "shapes"
    defaults = {"epochs": 8, "batch_size": 16, "optimizer": "adamw", "lr": 5e-4, "weight_decay": 1e-4,
                "schedule": "cosine", "image_size": None, "embed_dim": 64, "box_fraction": 0.25}
    monitor = "miou"

    def datasets(self, config: dict[str, Any]) -> tuple[Any, Any, Any]:
        return scene_datasets(config)

    def model_kwargs(self, config: dict[str, Any], train_set: Any) -> dict[str, Any]:
        return {"image_size": config["image_size"], "embed_dim": config["embed_dim"]}

    def module(self, model: Any, config: dict[str, Any]) -> TrainModule:
        return PromptModule(model, optimizer_factory(config), scheduler_factory(config), config["box_fraction"],
                            config["seed"])

    def collate(self) -> Any:
        return collate

    def predict(self, model: Any, config: dict[str, Any], args: argparse.Namespace) -> None:
        from tinyvision.data.folder import load_image
        from tinyvision.viz.plot import _figure, _save, _show_image

        point = getattr(args, "point", None)
        if point is None:
            raise SystemExit("predict --task prompt: give --point x,y (a click in pixels)")
        try:
            x, y = (float(v) for v in point.split(","))
        except ValueError:
            raise SystemExit(f"--point {point!r}: expected two numbers x,y, e.g. --point 30,12") from None
        image = load_image(args.image)[:3]
        size = config["image_size"]
        if image.shape[-2:] != (size, size):
            raise SystemExit(f"predict --task prompt: {args.image} is {image.shape[2]}x{image.shape[1]}; the model "
                             f"takes {size}x{size} images")
        model.eval()
        try:
            with tv.no_grad():
                masks, iou = model(tv.tensor(image[None]), points=(np.array([[[x, y]]]), np.array([[1]])))
        except ValueError as exc:                      # a click outside the image
            raise SystemExit(f"--point {point}: {exc}") from None
        masks, iou = masks.numpy()[0] > 0, iou.numpy()[0]
        for k in range(len(iou)):
            print(f"mask {k}: predicted IoU {iou[k]:.3f}, {int(masks[k].sum())} pixels")
        best = int(iou.argmax())
        fig = _figure((4, 4))
        ax = fig.add_subplot(1, 1, 1)
        _show_image(ax, image)
        ax.imshow(np.ma.masked_where(~masks[best], masks[best]), alpha=0.5, cmap="autumn", interpolation="nearest")
        ax.plot([x], [y], marker="*", color="cyan", markersize=12)
        ax.set_title(f"click ({x:g}, {y:g}) -> mask {best}, predicted IoU {iou[best]:.2f}", fontsize=8)
        path = _save(fig, Path(f"{Path(args.image).stem}_{self.name}.png"))
        print(f"wrote {path}")
