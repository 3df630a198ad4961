"""Optimizers and learning-rate schedules, as ``torch.optim``.

``from tinyvision import optim``; ``optim.SGD(params, lr=0.1, momentum=0.9)``,
``optim.lr_scheduler.CosineAnnealingLR(opt, T_max=100)``. See docs/optim.md for the maths.
"""
from tinyvision.optim import lr_scheduler
from tinyvision.optim.adam import Adam, AdamW
from tinyvision.optim.optimizer import Optimizer
from tinyvision.optim.sgd import SGD

__all__ = ["Adam", "AdamW", "Optimizer", "SGD", "lr_scheduler"]
