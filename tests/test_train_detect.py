"""The detect task: the detection collate, a training step (an image without objects included:
a background-only loss, finite), validation through COCO mAP, and the one-line errors. The model
is a narrow RetinaNet-ResNet18-FPN (32 channels) so that this stays fast; the recipe's figure
comes from `tinyvision train --task detect` (docs/detection.md)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import tinyvision as tv
from tinyvision.data import shapes_scenes
from tinyvision.models import create_model
from tinyvision.train.detect import DetectTask, Detector, collate
from tinyvision.train.tasks import get_task, optimizer_factory
from tinyvision.train.trainer import Trainer, _batch_size


def tiny_batch():
    scenes = shapes_scenes(3, 64, seed=0)
    samples = [scenes[i] for i in range(3)]
    image, target = samples[2]
    samples[2] = (image, {"boxes": np.zeros((0, 4), np.float32), "labels": np.zeros(0, np.int64),
                          "masks": np.zeros((0, 64, 64), bool)})      # a scene without objects
    return collate(samples)


def test_collate_stacks_images_and_keeps_targets_per_image():
    images, targets = batch = tiny_batch()
    assert images.shape == (3, 3, 64, 64) and len(targets) == 3
    assert targets[0]["boxes"].shape[1] == 4 and targets[2]["boxes"].shape == (0, 4)
    assert _batch_size(batch) == 3                     # the Trainer weighs per-sample means by it


def test_training_and_validation_steps():
    tv.manual_seed(0)
    model = create_model("retinanet_resnet18_fpn", num_classes=4, min_size=64, max_size=64, fpn_channels=32,
                         anchor_sizes=[8, 16, 32, 64, 128], head_norm=True)
    config = {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.0}
    module = Detector(model, optimizer_factory(config))
    batch = tiny_batch()
    module.train()
    out = module.training_step(batch, 0)
    assert set(out) == {"loss", "loss_classification", "loss_bbox_regression"}
    assert math.isfinite(out["loss"].item())
    out["loss"].backward()
    assert model.head.classification_head.cls_logits.weight.grad is not None
    metrics = Trainer(progress=False).validate(module, [batch])
    assert set(metrics) == {"map", "map_50", "map_75"}
    assert all(-1 <= v <= 1 for v in metrics.values())


def test_detect_task_recipe_and_errors():
    task = get_task("detect")
    assert isinstance(task, DetectTask) and task.default_model == "retinanet_resnet18_fpn"
    assert task.monitor == "map_50" and task.collate() is collate
    with pytest.raises(SystemExit, match="train on 'shapes'"):
        task.datasets(dict(task.defaults, data="digits", seed=0))


@pytest.mark.slow  # builds the recipe's 128-wide RetinaNet
def test_viz_anchors_matches_every_box(tmp_path, capsys):
    """`tinyvision viz anchors`: the recipe's anchors on a scene; every box gets at least one
    anchor (the matcher's low-quality matches), and the picture is written."""
    import argparse

    from tinyvision.viz.anchors import run_anchors

    run_anchors(argparse.Namespace(checkpoint=None, image_size=None, out=str(tmp_path)))
    assert (tmp_path / "anchors.png").stat().st_size > 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("P3: 576 anchors (stride 8)")
    matched = sum(int(line.split(", ")[1].split()[0]) for line in lines if line.startswith("P"))
    assert matched >= 5                          # the scene (seed 3) holds 5 boxes


@pytest.mark.slow  # Mask R-CNN's train path is in tests/test_detection.py's default run
def test_instance_task_step_with_mask_rcnn():
    """The instance task: Mask R-CNN's five losses on a batch (an image without objects
    included), and box + mask mAP from a validation pass."""
    tv.manual_seed(0)
    task = get_task("instance")
    assert task.default_model == "maskrcnn_resnet18_fpn" and task.iou_type == ("bbox", "segm")
    config = dict(task.defaults, model="maskrcnn_resnet18_fpn", image_size=64, num_classes=4)
    kwargs = task.model_kwargs(config, None)
    model = create_model("maskrcnn_resnet18_fpn", **{**kwargs, "fpn_channels": 16, "rpn_pre_nms_top_n_test": 50,
                                                     "rpn_post_nms_top_n_test": 20})
    module = task.module(model, config)
    batch = tiny_batch()
    module.train()
    out = module.training_step(batch, 0)
    assert set(out) == {"loss", "loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg", "loss_mask"}
    assert math.isfinite(out["loss"].item())
    out["loss"].backward()
    metrics = Trainer(progress=False).validate(module, [batch])
    assert set(metrics) == {"map", "map_50", "map_75", "mask_map", "mask_map_50", "mask_map_75"}


def test_predict_prints_and_draws_detections(tmp_path, monkeypatch, capsys):
    import argparse

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    image, _ = shapes_scenes(1, 64, seed=5)[0]
    plt.imsave(tmp_path / "scene.png", image.transpose(1, 2, 0).clip(0, 1))
    monkeypatch.chdir(tmp_path)
    task = get_task("detect")
    model = create_model("retinanet_resnet18_fpn", num_classes=4, min_size=64, max_size=64, fpn_channels=32,
                         anchor_sizes=[8, 16, 32, 64, 128], head_norm=True)
    model.head.classification_head.cls_logits.bias.data[:] = 0.0   # scores ~0.5: detections to draw
    task.predict(model, {"image_size": 64}, argparse.Namespace(image=str(tmp_path / "scene.png"), topk=2))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("preprocessing: ") and "resized to 64x64" in lines[0]
    lines = lines[1:]
    assert len(lines) == 3 and lines[0].split()[0] in ("background", "circle", "square", "triangle")  # untrained
    assert lines[-1] == "wrote scene_detect.png" and (tmp_path / "scene_detect.png").stat().st_size > 0


def test_yolo_through_the_detect_task():
    task = get_task("detect")
    config = dict(task.defaults, model="yolo_resnet18", image_size=64, num_classes=4)
    assert task.model_kwargs(config, None) == {"num_classes": 4}
    module = task.module(create_model("yolo_resnet18", **task.model_kwargs(config, None)), config)
    batch = tiny_batch()
    module.train()
    out = module.training_step(batch, 0)
    assert set(out) == {"loss", "loss_coord", "loss_confidence", "loss_classification"}
    assert set(Trainer(progress=False).validate(module, [batch])) == {"map", "map_50", "map_75"}
