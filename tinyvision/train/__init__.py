"""Training: a Lightning-style ``TrainModule``, the ``Classifier`` for the common case, and the
``Trainer`` loop with progress, CSV metrics, curves and atomic, resumable checkpoints."""
from tinyvision.train.checkpoint import load_checkpoint
from tinyvision.train.module import Classifier, TrainModule, accuracy
from tinyvision.train.tasks import Task, get_task, list_tasks
from tinyvision.train.trainer import NonFiniteLossError, Trainer, plot_curves, write_csv

__all__ = ["Classifier", "NonFiniteLossError", "Task", "TrainModule", "Trainer", "accuracy", "get_task", "list_tasks",
           "load_checkpoint", "plot_curves", "write_csv"]
