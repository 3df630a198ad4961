"""What the Trainer trains: a module that knows its own steps, in the spirit of PyTorch
Lightning's ``LightningModule``.

A ``TrainModule`` holds the network and defines

* ``training_step(batch, batch_idx)`` -> the loss (a scalar Tensor) or a dict with ``"loss"``
  and any other metrics (numbers or scalar Tensors) to log;
* ``validation_step(batch, batch_idx)`` -> a dict of metrics (optional); the Trainer averages
  them over the samples;
* ``on_validation_epoch_start()`` / ``on_validation_epoch_end() -> dict`` (optional), for metrics
  that are not per-batch means (mean IoU, mAP, PSNR over a set): reset an accumulator at the
  start, return the finished metrics at the end; the Trainer merges them into the epoch's row;
* ``configure_optimizers()`` -> an optimizer, or ``(optimizer, scheduler)``, or a dict with
  ``"optimizer"`` and ``"lr_scheduler"``; as in Lightning, ``"lr_scheduler"`` may itself be a
  dict ``{"scheduler": s, "interval": "epoch" | "step"}`` (default: once per epoch).

``Classifier`` is the common case written once: logits from ``model(x)``, cross-entropy on
logits (softmax lives inside the loss), accuracy from the arg-max.
"""
from __future__ import annotations

from typing import Any, Callable

import tinyvision as tv
import tinyvision.nn.functional as F
from tinyvision import nn


class TrainModule(nn.Module):
    """Subclass and define the steps; see the module docstring."""

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define training_step(batch, batch_idx)")

    def validation_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__} defines no validation_step")

    def configure_optimizers(self) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define configure_optimizers()")

    def on_validation_epoch_start(self) -> None:
        """Called before the first validation batch (reset metric accumulators here)."""

    def on_validation_epoch_end(self) -> dict[str, float]:
        """Called after the last validation batch: metrics computed over the whole set."""
        return {}


def accuracy(logits: tv.Tensor, target: tv.Tensor) -> float:
    """Share of rows whose arg-max is the target class (soft targets: their arg-max)."""
    if target.ndim == logits.ndim:  # probabilities (MixUp/CutMix): compare with the top class
        target = target.argmax(-1)
    return float((logits.argmax(-1).numpy() == target.numpy()).mean())


class Classifier(TrainModule):
    """A classification network + loss + optimizer, as one TrainModule.

    ``batch`` is ``(images, targets)``; targets are class indices or probabilities.
    ``optimizer`` is a function ``params -> Optimizer`` (e.g. ``lambda p: SGD(p, lr=0.1)``),
    ``scheduler`` optionally ``optimizer -> LRScheduler``, stepped once per epoch, or after
    every optimizer step with ``scheduler_interval="step"`` (warm-up and cosine over steps).
    """

    def __init__(self, model: nn.Module, optimizer: Callable[[Any], Any],
                 scheduler: Callable[[Any], Any] | None = None,
                 loss_fn: Callable[[tv.Tensor, tv.Tensor], tv.Tensor] = F.cross_entropy,
                 batch_transform: Callable[[Any], Any] | None = None,
                 scheduler_interval: str = "epoch") -> None:
        super().__init__()
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"Classifier: scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}")
        self.scheduler_interval = scheduler_interval
        self.model = model
        self._optimizer, self._scheduler = optimizer, scheduler
        self.loss_fn = loss_fn
        self.batch_transform = batch_transform  # e.g. CutMix on a whole batch

    def forward(self, x: tv.Tensor) -> tv.Tensor:
        return self.model(x)

    def _step(self, batch: Any) -> dict[str, Any]:
        x, y = batch
        logits = self.model(x)
        if isinstance(logits, tuple):  # GoogLeNet's aux heads in train mode: main logits only
            logits = logits[0]
        return {"loss": self.loss_fn(logits, y), "acc": accuracy(logits.detach(), y)}

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        if self.batch_transform is not None:
            batch = self.batch_transform(batch)
        return self._step(batch)

    def validation_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        return self._step(batch)

    def configure_optimizers(self) -> Any:
        optimizer = self._optimizer(self.model.parameters())
        if self._scheduler is None:
            return optimizer
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": self._scheduler(optimizer), "interval": self.scheduler_interval}}
