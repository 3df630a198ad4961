"""The segment task: its recipe, data splits, the Segmenter's steps and whole-split mIoU,
predict's PNGs, the prediction grid, and the command line's one-line errors."""
import argparse

import numpy as np
import pytest

import tinyvision as tv
from tinyvision.metrics import mean_iou, panoptic_quality
from tinyvision.models import create_model
from tinyvision.train.segment import class_segments
from tinyvision.train.tasks import get_task


def test_recipe_and_splits():
    task = get_task("segment")
    assert (task.default_model, task.default_data, task.monitor) == ("unet", "shapes", "mean_iou")
    config = {"data": "shapes", "seed": 0, "model": "unet", **task.defaults}
    train, val, test = task.datasets(config)
    assert (len(train), len(val), len(test)) == (2700, 300, 600) and config["image_size"] == 32
    # validation is carved from the training images, never from the test ones
    assert not set(train.indices) & set(val.indices)
    image, classes = train[0]
    assert image.shape == (3, 32, 32) and classes.shape == (32, 32) and classes.dtype == np.int64
    kwargs = task.model_kwargs({**config, "model": "unet"}, train)
    assert kwargs == {"num_classes": 4, "depth": 3, "width": 16, "up": "transpose"}


def test_segmenter_steps_and_whole_split_miou():
    task = get_task("segment")
    config = {"data": "shapes", "seed": 0, "model": "unet", **task.defaults, "image_size": 16, "num_classes": 4}
    model = create_model("unet", num_classes=4, depth=2, width=4)
    module = task.module(model, config)
    rng = np.random.default_rng(0)
    x = tv.tensor(rng.standard_normal((4, 3, 16, 16)).astype(np.float32))
    y = tv.tensor(rng.integers(0, 4, (4, 16, 16)))
    out = module.training_step((x, y), 0)
    out["loss"].backward()
    assert np.isfinite(out["loss"].item()) and all(p.grad is not None for p in model.parameters())
    module.eval()
    module.on_validation_epoch_start()
    with tv.no_grad():
        module.validation_step((x[:2], y[:2]), 0)
        module.validation_step((x[2:], y[2:]), 1)
        pred = model(x).argmax(1).numpy()
    metrics = module.on_validation_epoch_end()
    assert metrics["mean_iou"] == pytest.approx(mean_iou(pred, y.numpy(), 4))   # over the split, not per batch
    assert set(metrics) == {"mean_iou", "iou_0", "iou_1", "iou_2", "iou_3", "pq", "sq", "rq"}
    expect = panoptic_quality([class_segments(p) for p in pred], [class_segments(t) for t in y.numpy()])
    assert metrics["pq"] == pytest.approx(expect["pq"])


def test_fcn_aux_loss_is_added():
    task = get_task("segment")
    config = {"data": "shapes", "seed": 0, "model": "fcn_resnet50", **task.defaults, "image_size": 32}
    assert task.model_kwargs({**config, "num_classes": 4}, None) == {"num_classes": 4, "aux_loss": True}


def test_predict_writes_mask_and_overlay(tmp_path):
    from PIL import Image

    task = get_task("segment")
    model = create_model("unet", num_classes=4, depth=2, width=4)
    image = (np.random.default_rng(1).random((20, 24, 3)) * 255).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "x.png")
    config = {"image_size": 16, "num_classes": 4}
    task.predict(model, config, argparse.Namespace(image=str(tmp_path / "x.png"), out=str(tmp_path / "out")))
    mask = np.asarray(Image.open(tmp_path / "out" / "x_mask.png"))
    overlay = np.asarray(Image.open(tmp_path / "out" / "x_overlay.png"))
    assert mask.shape == (16, 16) and set(np.unique(mask)) <= {0, 85, 170, 255}
    assert overlay.shape == (16, 16, 3)


def test_prediction_grid_and_colours(tmp_path):
    from tinyvision.viz.segmentation import colorize, overlay, plot_prediction_grid

    truth = np.array([[0, 1], [2, 3]])
    colours = colorize(truth)
    assert (colours[0, 0] == 0).all() and len({tuple(c) for c in colours.reshape(-1, 3)}) == 4
    image = np.full((3, 2, 2), 0.5, np.float32)
    blended = overlay(image, colours)
    assert (blended[0, 0] == 128).all() and not (blended[1, 1] == 128).all()  # background left alone
    path = plot_prediction_grid([image, image], [truth, truth], [truth, np.zeros_like(truth)],
                                tmp_path / "grid.png", class_names=["bg", "a", "b", "c"])
    assert path.exists() and path.stat().st_size > 1000


def test_cli_errors_are_one_line(capsys):
    from tinyvision.cli import main

    with pytest.raises(SystemExit, match="unknown --data 'digits' for --task segment"):
        main(["train", "--task", "segment", "--data", "digits", "--epochs", "1"])
    with pytest.raises(SystemExit, match="--task segment takes unet"):
        main(["train", "--task", "segment", "--model", "resnet18", "--epochs", "1"])
    with pytest.raises(SystemExit, match="needs an image size divisible by 8"):
        main(["train", "--task", "segment", "--image-size", "36", "--epochs", "1"])


def test_class_segments():
    classes = np.array([[0, 2, 2], [3, 3, 0]])
    seg = class_segments(classes)
    np.testing.assert_array_equal(seg["labels"], [2, 3])
    np.testing.assert_array_equal(seg["masks"][0], classes == 2)
    assert class_segments(np.zeros((2, 2), int))["masks"].shape == (0, 2, 2)
