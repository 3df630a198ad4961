"""Tasks: what differs between classification, segmentation, detection, restoration, ...

Every task trains with the same ``Trainer``; what changes is the data, the targets, the loss,
the metrics and what ``predict`` writes. A ``Task`` gathers those pieces under one name, so the
command line stays one command for all of them::

    tinyvision train --task segment --model unet --data shapes --out runs/unet
    tinyvision eval --checkpoint runs/unet/best.ckpt.npz --json
    tinyvision predict --task segment IMAGE.png --checkpoint runs/unet/best.ckpt.npz

A task's ``defaults`` *are* its documented recipe: ``tinyvision train --task T`` with nothing
else reproduces the figure its docs page quotes. The ``config`` dict built from them (plus the
command-line overrides) is stored in every checkpoint, so ``eval`` and ``predict`` rebuild the
same model and data without being told again.

Model selection is honest by construction: ``datasets`` returns ``(train, val, test)``, the
Trainer validates on ``val`` and keeps ``best.ckpt`` by ``monitor`` on it; the test split is
only read once, at the end, for the report.

Tasks live in their own modules and are imported only when asked for (``TASKS`` maps a name to
``"module:Class"``): ``tinyvision train --task classify`` never imports the detection code.
"""
from __future__ import annotations

import argparse
import importlib
from typing import Any, Callable

from tinyvision.train.module import TrainModule

# name -> "module:Class"; a module may serve several names (detect and instance share one file)
TASKS: dict[str, str] = {
    "classify": "tinyvision.train.classify:ClassifyTask",
    "segment": "tinyvision.train.segment:SegmentTask",
    "detect": "tinyvision.train.detect:DetectTask",
    "instance": "tinyvision.train.detect:InstanceTask",
    "denoise": "tinyvision.train.restore:DenoiseTask",
    "sr": "tinyvision.train.restore:SuperResolutionTask",
    "deblur": "tinyvision.train.restore:DeblurTask",
    "colorize": "tinyvision.train.restore:ColorizeTask",
    "mae": "tinyvision.train.selfsup:MAETask",
    "dino": "tinyvision.train.selfsup:DINOTask",
    "detr": "tinyvision.train.setpred:DETRTask",
    "panoptic": "tinyvision.train.setpred:PanopticTask",
    "prompt": "tinyvision.train.setpred:PromptTask",
}


class Task:
    """One kind of training job. Subclass it, set the class attributes, define the methods.

    default_model, default_data: what ``--model`` and ``--data`` mean when not given.
    defaults: the recipe (``epochs``, ``batch_size``, ``optimizer``, ``lr``, ``weight_decay``,
        ``schedule``, ``image_size``, and any task option); the command line overrides keys.
    monitor: the validation metric (without ``val_``; higher is better) that picks best.ckpt.
    """

    name: str = ""
    default_model: str = ""
    default_data: str = ""
    defaults: dict[str, Any] = {}
    monitor: str = "acc"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Options only this task has (e.g. ``--sigma`` for denoising). Default: none."""

    def datasets(self, config: dict[str, Any]) -> tuple[Any, Any, Any]:
        """``(train, val, test)``; ``val`` is carved from the training data with a seed."""
        raise NotImplementedError(f"task {self.name!r} defines no datasets()")

    def model_kwargs(self, config: dict[str, Any], train_set: Any) -> dict[str, Any]:
        """Constructor keywords for ``create_model(config["model"], **kwargs)``."""
        return {}

    def module(self, model: Any, config: dict[str, Any]) -> TrainModule:
        """The TrainModule (steps, loss, metrics, optimizer) that trains ``model``."""
        raise NotImplementedError(f"task {self.name!r} defines no module()")

    def collate(self) -> Callable[[list], Any] | None:
        """The DataLoader's ``collate_fn`` (None: the default stacking)."""
        return None

    def predict(self, model: Any, config: dict[str, Any], args: argparse.Namespace) -> None:
        """``tinyvision predict --task NAME``: run the model on ``args.image``, print or write."""
        raise NotImplementedError(f"task {self.name!r} has no predict")


def list_tasks() -> list[str]:
    """Every task name the command line accepts."""
    return list(TASKS)


def get_task(name: str) -> Task:
    """The Task registered as ``name`` (its module is imported now, not before)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}")
    module_name, _, class_name = TASKS[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:  # a missing dependency inside the module: not ours to hide
            raise
        raise ValueError(f"task {name!r} is declared but not built yet ({module_name} is missing)") from None
    task = getattr(module, class_name)()
    task.name = name
    return task


# ---------------------------------------------------------------------- shared by every task
# learning rates that train the zoo's small models well from scratch with each optimizer; used
# when the command line switches the optimizer and names no rate
DEFAULT_LR = {"sgd": 0.05, "adam": 2e-3, "adamw": 1e-3}
OPTIMIZERS = tuple(DEFAULT_LR)


def optimizer_factory(config: dict[str, Any]) -> Callable[[Any], Any]:
    """``params -> Optimizer`` from the recipe's ``optimizer``, ``lr`` and ``weight_decay``.

    SGD is SGD with Nesterov momentum 0.9; Adam and AdamW keep torch's defaults otherwise.
    """
    from tinyvision import optim

    name, lr, wd = config["optimizer"], config["lr"], config.get("weight_decay", 0.0)
    if name == "sgd":
        return lambda p: optim.SGD(p, lr=lr, momentum=0.9, weight_decay=wd, nesterov=True)
    if name == "adam":
        return lambda p: optim.Adam(p, lr=lr, weight_decay=wd)
    if name == "adamw":
        return lambda p: optim.AdamW(p, lr=lr, weight_decay=wd)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


def scheduler_factory(config: dict[str, Any]) -> Callable[[Any], Any] | None:
    """``optimizer -> LRScheduler`` stepped once per epoch: 'cosine' over all epochs, 'step'
    (x0.1 every third of the run) or 'none'."""
    from tinyvision import optim

    epochs, schedule = config["epochs"], config.get("schedule", "none")
    if schedule == "cosine":
        return lambda o: optim.lr_scheduler.CosineAnnealingLR(o, T_max=epochs)
    if schedule == "step":
        return lambda o: optim.lr_scheduler.StepLR(o, step_size=max(epochs // 3, 1), gamma=0.1)
    if schedule == "none":
        return None
    raise ValueError(f"schedule must be 'cosine', 'step' or 'none', got {schedule!r}")


def check_model_name(name: str) -> None:
    """A clear error for a name the registry does not know."""
    from tinyvision.models import list_models

    if name not in list_models():
        raise ValueError(f"unknown model {name!r}; `tinyvision models` lists the {len(list_models())} valid names")


def build_model(config: dict[str, Any]) -> Any:
    """``create_model(config["model"], **config["kwargs"])``, with an unknown name as a clear error."""
    from tinyvision.models import create_model

    check_model_name(config["model"])
    return create_model(config["model"], **config.get("kwargs", {}))


def fit(task: Task, config: dict[str, Any], out_dir: str | None = None, resume_from: str | None = None,
        progress: bool = True, distributed: bool = False, sync_batchnorm: bool = False) -> dict[str, Any]:
    """Train ``task`` with ``config``, keep the model that did best on validation, test it once.

    ``config`` needs ``model``, ``data``, ``seed`` and the recipe keys (``task.defaults``); it
    gains ``kwargs`` (the model's constructor options) and whatever ``task.datasets`` records,
    and is stored in every checkpoint. Returns ``{"history", "test", "best_epoch", "model",
    "seconds"}``: the per-epoch rows, the test metrics of the kept model, which epoch that was.
    ``distributed``: data-parallel over the ranks of ``mpiexec`` (``Trainer(distributed=True)``),
    with BatchNorm statistics over all ranks when ``sync_batchnorm``.
    """
    import json
    import time

    from tinyvision.data import DataLoader
    from tinyvision.random import manual_seed
    from tinyvision.train.trainer import Trainer

    check_model_name(config["model"])  # before any data is read
    manual_seed(config["seed"])
    train, val, test = task.datasets(config)
    config["kwargs"] = task.model_kwargs(config, train)
    model = build_model(config)
    module = task.module(model, config)
    trainer = Trainer(max_epochs=config["epochs"], out_dir=out_dir, seed=config["seed"], progress=progress,
                      monitor=f"val_{task.monitor}", extra_checkpoint={"config": json.dumps(config)},
                      distributed=distributed, sync_batchnorm=sync_batchnorm,
                      grad_clip_norm=config.get("grad_clip_norm"))  # a recipe key of some tasks (detr)
    collate = task.collate()
    train_loader = DataLoader(train, batch_size=config["batch_size"], shuffle=True, seed=config["seed"],
                              collate_fn=collate)
    start = time.perf_counter()
    history = trainer.fit(module, train_loader, DataLoader(val, batch_size=256, collate_fn=collate),
                          resume_from=resume_from)
    seconds = time.perf_counter() - start
    trainer.restore_best(module)
    test_metrics = trainer.validate(module, DataLoader(test, batch_size=256, collate_fn=collate))
    return {"history": history, "test": test_metrics, "best_epoch": trainer.best_epoch, "model": model,
            "seconds": seconds, "sizes": (len(train), len(val), len(test))}
