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
        from tinyvision.data.folder import load_image
        from tinyvision.data.functional import resize
        from tinyvision.data.shapes import SEGMENTATION_CLASSES
        from tinyvision.viz.detr import decoder_attention, plot_decoder_attention

        image = load_image(args.image)[:3]
        size = config["image_size"]
        if image.shape[-2:] != (size, size):
            image = resize(image, (size, size))
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
