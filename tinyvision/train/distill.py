"""Knowledge distillation: a student learns from the labels and from a trained teacher.

Hinton, Vinyals & Dean 2015 ("Distilling the knowledge in a neural network"): the teacher's
probabilities at a temperature T > 1 carry more than the label (which wrong classes look
alike); the student matches them with

    L_KD = T^2 * KL( softmax(z_t / T) || softmax(z_s / T) )          (mean over the batch)

The T^2 keeps the gradient's size independent of T (the soft targets' gradient scales as 1/T^2).

Touvron et al. 2021 (DeiT, section 5) for a transformer student, with the student's outputs
split over two heads when it has a distillation token (``tinyvision.models.deit``):

    soft:  (1 - alpha) * CE(z_cls, y) + alpha * tau^2 * KL( softmax(z_t / tau) || softmax(z_dist / tau) )
    hard:  1/2 * CE(z_cls, y) + 1/2 * CE(z_dist, argmax z_t)

A student without a distillation token uses its single output for both terms. The teacher is
never trained: it runs in eval mode, without a graph, and stays outside the module's
parameters and state_dict, so a checkpoint of the DistillationClassifier is the student's.
(DeiT's own code divides the KL sum by N * C rather than N; the formulas above follow the paper.)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import tinyvision as tv
import tinyvision.nn.functional as F
from tinyvision import nn
from tinyvision.train.module import Classifier, accuracy

DISTILLATION = ("soft", "hard", "none")


def hinton_kd_loss(student_logits: tv.Tensor, teacher_logits: tv.Tensor, temperature: float = 4.0) -> tv.Tensor:
    """T^2 * KL(softmax(teacher / T) || softmax(student / T)), averaged over the batch.

    student_logits, teacher_logits (N, C) -> a scalar. The teacher is a constant (detached).
    """
    if temperature <= 0:
        raise ValueError(f"hinton_kd_loss: temperature must be > 0, got {temperature}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"hinton_kd_loss: student logits {student_logits.shape} and teacher logits "
                         f"{teacher_logits.shape} must have one shape (N, C)")
    log_q = F.log_softmax(student_logits / temperature, dim=-1)
    log_p = F.log_softmax(teacher_logits.detach() / temperature, dim=-1)
    return F.kl_div(log_q, log_p, reduction="batchmean", log_target=True) * temperature ** 2


def soft_distillation_loss(logits: tv.Tensor, logits_dist: tv.Tensor, teacher_logits: tv.Tensor, target: tv.Tensor,
                           alpha: float = 0.5, tau: float = 1.0) -> tv.Tensor:
    """DeiT's soft distillation: (1 - alpha) CE(logits, y) + alpha * tau^2 KL(teacher || dist head)."""
    return (1 - alpha) * F.cross_entropy(logits, target) + alpha * hinton_kd_loss(logits_dist, teacher_logits, tau)


def hard_distillation_loss(logits: tv.Tensor, logits_dist: tv.Tensor, teacher_logits: tv.Tensor,
                           target: tv.Tensor) -> tv.Tensor:
    """DeiT's hard distillation: 1/2 CE(logits, y) + 1/2 CE(dist head, the teacher's arg-max)."""
    teacher_labels = teacher_logits.detach().argmax(-1)
    return 0.5 * F.cross_entropy(logits, target) + 0.5 * F.cross_entropy(logits_dist, teacher_labels)


def load_teacher(teacher: nn.Module | str | Path) -> nn.Module:
    """A model, or the model of a ``tinyvision train`` checkpoint (via load_checkpoint), in eval mode."""
    if isinstance(teacher, (str, Path)):
        from tinyvision.train.checkpoint import load_checkpoint

        teacher, _ = load_checkpoint(teacher)
    if not isinstance(teacher, nn.Module):
        raise TypeError(f"DistillationClassifier: teacher must be a Module or a checkpoint path, "
                        f"got {type(teacher).__name__}")
    return teacher.eval()


class DistillationClassifier(Classifier):
    """A Classifier whose training loss also asks the student to agree with a teacher.

    ``model``: the student; it may return ``(logits, logits_dist)`` in train mode (DeiT).
    ``teacher``: a trained Module or a checkpoint path; it must predict the student's classes.
    ``None`` when the batches carry the teacher's logits as a third item ``(x, y, z_t)``
    (offline distillation: the teacher runs once over fixed images instead of at every step).
    ``distillation``: 'soft' (DeiT soft / Hinton KD with weight ``alpha`` and temperature
    ``tau``), 'hard' (DeiT hard) or 'none' (plain cross-entropy, the baseline).
    Validation scores the student alone, in eval mode (a DeiT averages its two heads there).
    """

    def __init__(self, model: nn.Module, teacher: nn.Module | str | Path | None, optimizer: Callable[[Any], Any],
                 scheduler: Callable[[Any], Any] | None = None, distillation: str = "soft", alpha: float = 0.5,
                 tau: float = 1.0, batch_transform: Callable[[Any], Any] | None = None,
                 scheduler_interval: str = "epoch") -> None:
        super().__init__(model, optimizer, scheduler, batch_transform=batch_transform,
                         scheduler_interval=scheduler_interval)
        if distillation not in DISTILLATION:
            raise ValueError(f"DistillationClassifier: distillation must be one of {DISTILLATION}, got {distillation!r}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"DistillationClassifier: alpha must be in [0, 1], got {alpha}")
        self.distillation, self.alpha, self.tau = distillation, alpha, tau
        # kept out of the module tree: never trained, never in the state_dict, never in train mode
        object.__setattr__(self, "teacher", None if teacher is None else load_teacher(teacher))
        classes = (getattr(self.teacher, "num_classes", None), getattr(model, "num_classes", None))
        if None not in classes and classes[0] != classes[1]:
            raise ValueError(f"DistillationClassifier: the teacher predicts {classes[0]} classes and the student "
                             f"{classes[1]}; distil between models of the same classes")

    def _teacher_logits(self, x: tv.Tensor, student_logits: tv.Tensor, given: tv.Tensor | None = None) -> tv.Tensor:
        if given is not None:  # computed once, before training (offline distillation)
            teacher_logits = given
        elif self.teacher is None:
            raise ValueError("DistillationClassifier: no teacher was given, so each batch must carry the teacher's "
                             "logits as a third item (images, labels, teacher_logits)")
        else:
            with tv.no_grad():
                teacher_logits = self.teacher(x)
        if teacher_logits.shape != student_logits.shape:
            raise ValueError(f"DistillationClassifier: the teacher predicts {teacher_logits.shape[-1]} classes and "
                             f"the student {student_logits.shape[-1]} (logits {tuple(teacher_logits.shape)} vs "
                             f"{tuple(student_logits.shape)}); distil between models of the same classes")
        return teacher_logits

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        if self.batch_transform is not None:
            batch = self.batch_transform(batch)
        x, y, *given = batch  # a third item: the teacher's logits for these images, computed beforehand
        out = self.model(x)
        logits, logits_dist = out if isinstance(out, tuple) else (out, out)
        if self.distillation == "none":
            loss = F.cross_entropy(logits, y)
        else:
            teacher_logits = self._teacher_logits(x, logits, given[0] if given else None)
            if self.distillation == "soft":
                loss = soft_distillation_loss(logits, logits_dist, teacher_logits, y, self.alpha, self.tau)
            else:
                loss = hard_distillation_loss(logits, logits_dist, teacher_logits, y)
        return {"loss": loss, "acc": accuracy(logits.detach(), y)}
