"""Training: a Lightning-style ``TrainModule``, the ``Classifier`` for the common case, and the
``Trainer`` loop with progress, CSV metrics, curves and atomic, resumable checkpoints."""
from tinyvision.train.module import Classifier, TrainModule, accuracy
from tinyvision.train.trainer import NonFiniteLossError, Trainer, plot_curves, write_csv

__all__ = ["Classifier", "NonFiniteLossError", "TrainModule", "Trainer", "accuracy", "plot_curves", "write_csv"]
