"""DINO's pieces (Caron et al. 2021): self-distillation with no labels.

A student and a teacher share one architecture (a ViT + ``DINOHead``). The teacher is not
trained by gradients: its weights are an exponential moving average of the student's
(``ema_update`` with the ``momentum_schedule``). Both see different crops of one image; the
student learns to predict, from any crop, the teacher's distribution over K prototypes for the
global crops (``DINOLoss``). Two tricks keep the teacher from collapsing to a constant:
*centering* (subtract an EMA of the teacher's mean output: no prototype may dominate) and
*sharpening* (a low teacher temperature: the distribution may not become uniform).

Here: the projection head, the loss with its center and temperature schedule, the momentum
schedule and the EMA step. The training task (multi-crop data, the loop) is not built yet.
Keys follow the paper's code: ``mlp.0``, ``mlp.2``, ``mlp.4``, ``last_layer.weight_g``,
``last_layer.weight_v``.
"""
from __future__ import annotations

import numpy as np

import tinyvision as tv
import tinyvision.nn.functional as F
from tinyvision import nn


class WeightNormLinear(nn.Module):
    """Linear without bias whose weight is w = g * v / ||v|| per output row (Salimans & Kingma 2016).

    ``weight_v`` (out, in) gives the direction, ``weight_g`` (out, 1) the length. DINO fixes
    g = 1 (``norm_last_layer``): every prototype is a unit vector, so the logits are cosines times
    the input's norm (1: the head normalises its bottleneck) and no prototype can win by growing.
    """

    def __init__(self, in_features: int, out_features: int, fix_norm: bool = True) -> None:
        super().__init__()
        self.weight_g = nn.Parameter(tv.ones(out_features, 1), requires_grad=not fix_norm)
        self.weight_v = nn.Parameter(tv.zeros(out_features, in_features))
        nn.init.trunc_normal_(self.weight_v, std=0.02)

    def forward(self, x: tv.Tensor) -> tv.Tensor:
        v = self.weight_v
        weight = self.weight_g * v / (v * v).sum(dim=1, keepdim=True).sqrt()
        return x @ weight.transpose(0, 1)


class DINOHead(nn.Module):
    """(N, in_dim) -> (N, out_dim): MLP (in -> hidden -> hidden -> bottleneck, GELU between),
    L2-normalise, then the weight-normalised prototypes."""

    def __init__(self, in_dim: int, out_dim: int = 65536, hidden_dim: int = 2048, bottleneck_dim: int = 256,
                 norm_last_layer: bool = True) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, hidden_dim),
                                 nn.GELU(), nn.Linear(hidden_dim, bottleneck_dim))
        for m in self.mlp.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.last_layer = WeightNormLinear(bottleneck_dim, out_dim, fix_norm=norm_last_layer)

    def forward(self, x: tv.Tensor) -> tv.Tensor:
        x = self.mlp(x)
        x = x / (x * x).sum(dim=-1, keepdim=True).sqrt().clamp(min=1e-12)  # F.normalize(p=2, eps=1e-12)
        return self.last_layer(x)


def teacher_temperature_schedule(warmup_temp: float, temp: float, warmup_epochs: int, epochs: int) -> np.ndarray:
    """(epochs,): linear from ``warmup_temp`` to ``temp`` over ``warmup_epochs``, then ``temp``."""
    return np.concatenate([np.linspace(warmup_temp, temp, warmup_epochs), np.full(epochs - warmup_epochs, temp)])


def momentum_schedule(base: float, total_steps: int) -> np.ndarray:
    """(total_steps,): the teacher's EMA momentum, m_k = 1 - (1 - base)(cos(pi k / K) + 1) / 2,
    rising from ``base`` (0.996) towards 1, so the teacher settles as training ends."""
    k = np.arange(total_steps)
    return 1 - (1 - base) * (np.cos(np.pi * k / total_steps) + 1) / 2


def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """teacher <- m * teacher + (1 - m) * student, parameter by parameter (no graph)."""
    with tv.no_grad():
        for (name, t), (_, s) in zip(teacher.named_parameters(), student.named_parameters()):
            if t.shape != s.shape:
                raise ValueError(f"ema_update: {name} is {t.shape} in the teacher and {s.shape} in the student")
            t.data[...] = momentum * t.data + (1 - momentum) * s.data


class DINOLoss(nn.Module):
    """Cross-entropy between the centred, sharpened teacher distribution of each global crop and
    the student's distribution of every *other* crop, averaged over the pairs.

    student_output (n_crops * N, K), teacher_output (2 * N, K) (the two global crops, first),
    epoch -> a scalar. ``center`` (1, K) moves towards the teacher's batch mean with momentum
    ``center_momentum`` after each call (``update_center``).
    """

    def __init__(self, out_dim: int, n_crops: int, warmup_teacher_temp: float = 0.04, teacher_temp: float = 0.04,
                 warmup_teacher_temp_epochs: int = 0, epochs: int = 100, student_temp: float = 0.1,
                 center_momentum: float = 0.9) -> None:
        super().__init__()
        if n_crops < 2:
            raise ValueError(f"DINOLoss: n_crops must be >= 2 (two global crops at least), got {n_crops}")
        self.n_crops, self.student_temp, self.center_momentum = n_crops, student_temp, center_momentum
        self.register_buffer("center", tv.zeros(1, out_dim))
        self.teacher_temps = teacher_temperature_schedule(warmup_teacher_temp, teacher_temp,
                                                          warmup_teacher_temp_epochs, epochs)

    def forward(self, student_output: tv.Tensor, teacher_output: tv.Tensor, epoch: int) -> tv.Tensor:
        student = (student_output / self.student_temp).chunk(self.n_crops)
        temp = float(self.teacher_temps[epoch])
        teacher = F.softmax((teacher_output.detach() - self.center) / temp, dim=-1).chunk(2)
        total, pairs = 0.0, 0
        for i, q in enumerate(teacher):
            for v, s in enumerate(student):
                if v == i:  # the same view: nothing to predict
                    continue
                total = total + (-q * F.log_softmax(s, dim=-1)).sum(dim=-1).mean()
                pairs += 1
        self.update_center(teacher_output)
        return total / pairs

    def update_center(self, teacher_output: tv.Tensor) -> None:
        """center <- m * center + (1 - m) * mean over the batch of the teacher's outputs."""
        with tv.no_grad():
            batch_center = teacher_output.detach().mean(dim=0, keepdim=True)
            self.center.data[...] = (self.center * self.center_momentum
                                     + batch_center * (1 - self.center_momentum)).data

