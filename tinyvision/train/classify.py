"""The ``classify`` task: one label per image, cross-entropy on logits, accuracy.

The recipe (``ClassifyTask.defaults``) is what ``make demo`` runs: LeNet-5 on the digits, Adam
at 2e-3, batch 16, a cosine schedule over 10 epochs. A tenth of the training images (seeded)
is held out as the validation split that picks ``best.ckpt``; the test split is read once, at
the end, for the report.
"""
from __future__ import annotations

import argparse
import copy
from typing import Any

import numpy as np

import tinyvision as tv
from tinyvision.train.module import Classifier, TrainModule
from tinyvision.train.tasks import Task, optimizer_factory, scheduler_factory

DATASETS = ("digits", "shapes", "mnist:PATH", "fashion-mnist:PATH", "cifar10:PATH", "folder:PATH")
VAL_FRACTION = 0.1


def hold_out(train_plain: Any, train_augmented: Any, fraction: float, seed: int) -> tuple[Any, Any]:
    """``(train, val)``: a seeded ``fraction`` of the training samples becomes the validation split.

    Two views of the same samples come in: ``train_augmented`` (with the training transform)
    feeds the kept part, ``train_plain`` (no augmentation) the validation part, so that
    validation images are never augmented.
    """
    from tinyvision.data import Subset, random_split

    n_val = max(1, int(round(fraction * len(train_plain))))
    keep, val = random_split(train_plain, [len(train_plain) - n_val, n_val], seed=seed)
    return Subset(train_augmented, keep.indices), val


def with_transform(dataset: Any, transform: Any) -> Any:
    """The same samples with another image transform (a shallow copy: the arrays are shared)."""
    view = copy.copy(dataset)
    view.transform = transform
    return view


def load_data(spec: str, image_size: int | None, augment: bool = False,
              seed: int = 0) -> tuple[Any, Any, Any, int, int]:
    """'digits', 'shapes', 'mnist:DIR', 'cifar10:DIR', 'folder:DIR' -> (train, val, test,
    channels, classes). Images are resized to ``image_size`` when given."""
    from tinyvision.data import Subset, cifar10, digits, mnist, shapes, transforms as T

    name, _, path = spec.partition(":")
    train_tf = None
    if name == "digits":
        size = image_size or 32
        if augment:
            train_tf = T.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1))
        plain = digits(train=True, size=size)
        train, val = hold_out(plain, with_transform(plain, train_tf), VAL_FRACTION, seed)
        return train, val, digits(train=False, size=size), 1, 10
    if name == "shapes":
        size = image_size or 32
        if augment:
            train_tf = T.Compose([T.RandomCrop(size, padding=2), T.RandomHorizontalFlip()])
        plain = shapes(3000, size, seed=0)
        train, val = hold_out(plain, with_transform(plain, train_tf), VAL_FRACTION, seed)
        return train, val, shapes(600, size, seed=1), 3, 3
    if name in ("mnist", "fashion-mnist", "cifar10", "folder") and not path:
        raise SystemExit(f"--data {name} needs a local folder: --data {name}:PATH (nothing is downloaded)")
    resize = T.Resize(image_size) if image_size else None
    if name in ("mnist", "fashion-mnist", "cifar10"):
        reader = cifar10 if name == "cifar10" else mnist
        train_set = reader(path, True, resize)
        train, val = hold_out(train_set, train_set, VAL_FRACTION, seed)
        test = reader(path, False, resize)
        return train, val, test, (3 if name == "cifar10" else 1), 10
    if name == "folder":
        from tinyvision.data import ImageFolder

        data = ImageFolder(path, transform=resize)
        order = np.random.default_rng(0).permutation(len(data))
        n_test = len(data) // 5
        n_val = max(1, int(round(VAL_FRACTION * (len(data) - n_test))))
        test, val, train = np.split(order, [n_test, n_test + n_val])
        channels = data[0][0].shape[0]
        return Subset(data, train), Subset(data, val), Subset(data, test), channels, len(data.classes)
    raise SystemExit(f"unknown --data {spec!r}; choose one of: {', '.join(DATASETS)}")


def model_kwargs(name: str, channels: int, image_size: int, num_classes: int) -> dict[str, Any]:
    """The constructor options that fit a model family to the data's channels and size."""
    kwargs: dict[str, Any] = {"num_classes": num_classes}
    if name.startswith("lenet"):
        kwargs["in_channels"] = channels
    elif name.startswith("resnet"):
        kwargs.update(in_channels=channels, cifar_stem=image_size <= 64)
    elif name.startswith("vit"):
        kwargs.update(in_chans=channels, img_size=image_size, patch_size=4 if image_size <= 64 else 16)
    elif channels != 3:
        raise SystemExit(f"model {name} takes 3-channel images; the data has {channels} "
                         "(use lenet5, resnet* or vit* for grey images)")
    return kwargs


class ClassifyTask(Task):
    """Image classification (LeNet-5 on the digits by default: the ``make demo`` recipe)."""

    default_model = "lenet5"
    default_data = "digits"
    defaults = {"epochs": 10, "batch_size": 16, "optimizer": "adam", "lr": 2e-3, "weight_decay": 0.0,
                "schedule": "cosine", "image_size": None, "augment": False}
    monitor = "acc"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--augment", action="store_true", default=None,
                            help="light augmentation (affine for digits, crop+flip for shapes)")

    def datasets(self, config: dict[str, Any]) -> tuple[Any, Any, Any]:
        image_size = config["image_size"] or (32 if config["data"] in ("digits", "shapes") else None)
        train, val, test, channels, classes = load_data(config["data"], image_size, config["augment"],
                                                        config["seed"])
        config["image_size"] = image_size or train[0][0].shape[-1]
        config["channels"], config["num_classes"] = channels, classes
        folder = getattr(train, "dataset", None)
        if getattr(folder, "classes", None):  # an ImageFolder's class names, for predict
            config["classes"] = list(folder.classes)
        return train, val, test

    def model_kwargs(self, config: dict[str, Any], train_set: Any) -> dict[str, Any]:
        return model_kwargs(config["model"], config["channels"], config["image_size"], config["num_classes"])

    def module(self, model: Any, config: dict[str, Any]) -> TrainModule:
        return Classifier(model, optimizer_factory(config), scheduler_factory(config))

    def predict(self, model: Any, config: dict[str, Any], args: argparse.Namespace) -> None:
        from tinyvision.train.checkpoint import prepare_image

        channels = config["kwargs"].get("in_channels", config["kwargs"].get("in_chans", 3))
        image, steps = prepare_image(args.image, channels, config["image_size"])
        print("preprocessing: " + ", ".join(steps))
        if config["data"] == "digits" and image.mean() > 0.5:  # the digits are bright strokes on black
            print(f"warning: the image is mostly bright (mean {image.mean():.2f}) but the digits this model "
                  "learned are bright strokes on a black background; if yours is dark ink on white, invert it")
        with tv.no_grad():
            probs = tv.softmax(model(tv.tensor(image[None])), dim=1).numpy()[0]
        names = class_names(config)
        for k in np.argsort(-probs)[: args.topk]:
            print(f"{names[k]:<16} {probs[k]:.4f}")


def class_names(config: dict[str, Any]) -> list[str]:
    """The names of the classes the checkpoint's model predicts, by its dataset."""
    from tinyvision.data.readers import CIFAR10_CLASSES, FASHION_MNIST_CLASSES
    from tinyvision.data.shapes import CLASSES

    n = config.get("num_classes") or config["kwargs"].get("num_classes", 0)
    known = {"digits": [str(d) for d in range(10)], "mnist": [str(d) for d in range(10)], "shapes": list(CLASSES),
             "fashion-mnist": list(FASHION_MNIST_CLASSES), "cifar10": list(CIFAR10_CLASSES)}
    names = config.get("classes") or known.get(str(config.get("data", "")).partition(":")[0])
    return list(names) if names and len(names) == n else [f"class {k}" for k in range(n)]
