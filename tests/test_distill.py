"""Distillation losses against the formulas computed in torch (Hinton's KD, DeiT soft and hard),
loss and gradient in float64, plus gradcheck; the DistillationClassifier's teacher handling
(eval mode, no gradient, outside the state_dict, from a checkpoint, class mismatch)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import tinyvision as tv
from tinyvision import nn
from tinyvision.train.distill import (DistillationClassifier, hard_distillation_loss, hinton_kd_loss,
                                      soft_distillation_loss)

RNG = np.random.default_rng(0)
S, SD, T = (3 * RNG.standard_normal((5, 4)) for _ in range(3))  # student, student's dist head, teacher
Y = RNG.integers(0, 4, 5)


def torch_kd(s: torch.Tensor, t: torch.Tensor, temp: float) -> torch.Tensor:
    """T^2 KL(p_t || p_s) per sample, averaged: written out from the definition."""
    p_t = torch.softmax(t / temp, -1)
    return temp ** 2 * (p_t * (torch.log(p_t) - torch.log_softmax(s / temp, -1))).sum(-1).mean()


def check(ours_fn, torch_fn) -> None:
    s, sd = tv.tensor(S, requires_grad=True), tv.tensor(SD, requires_grad=True)
    ts, tsd = torch.tensor(S, requires_grad=True), torch.tensor(SD, requires_grad=True)
    ours, theirs = ours_fn(s, sd), torch_fn(ts, tsd)
    ours.backward()
    theirs.backward()
    np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-12)
    np.testing.assert_allclose(s.grad.numpy(), ts.grad.numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(sd.grad.numpy(), tsd.grad.numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("temp", [1.0, 4.0])
def test_hinton_kd_loss_matches_the_formula_in_torch(temp: float) -> None:
    check(lambda s, sd: hinton_kd_loss(s, tv.tensor(T), temp) + 0 * sd.sum(),
          lambda s, sd: torch_kd(s, torch.tensor(T), temp) + 0 * sd.sum())


@pytest.mark.parametrize("alpha, tau", [(0.5, 1.0), (0.1, 3.0)])
def test_soft_distillation_matches_deit_formula_in_torch(alpha: float, tau: float) -> None:
    ce = torch.nn.functional.cross_entropy
    check(lambda s, sd: soft_distillation_loss(s, sd, tv.tensor(T), tv.tensor(Y), alpha, tau),
          lambda s, sd: (1 - alpha) * ce(s, torch.tensor(Y)) + alpha * torch_kd(sd, torch.tensor(T), tau))


def test_hard_distillation_matches_deit_formula_in_torch() -> None:
    ce = torch.nn.functional.cross_entropy
    check(lambda s, sd: hard_distillation_loss(s, sd, tv.tensor(T), tv.tensor(Y)),
          lambda s, sd: 0.5 * ce(s, torch.tensor(Y)) + 0.5 * ce(sd, torch.tensor(T).argmax(-1)))


def test_kd_loss_gradient_matches_finite_differences_and_vanishes_when_student_agrees() -> None:
    s = tv.tensor(S, requires_grad=True)
    assert tv.gradcheck(lambda s: hinton_kd_loss(s, tv.tensor(T), 2.0), (s,))
    assert abs(hinton_kd_loss(tv.tensor(T), tv.tensor(T), 2.0).item()) < 1e-12


def test_teacher_is_frozen_in_eval_mode_and_outside_the_state_dict(tmp_path) -> None:
    tv.manual_seed(0)
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))
    student = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    module = DistillationClassifier(student, teacher, lambda p: tv.optim.SGD(p, lr=0.1), distillation="soft")
    module.train()
    assert not teacher.training
    assert all(k.startswith("model.") for k in module.state_dict())
    before = teacher.state_dict()["2.running_mean"].numpy().copy()
    x, y = tv.randn(6, 3, 2, 2), tv.tensor(RNG.integers(0, 3, 6))
    out = module.training_step((x, y), 0)
    out["loss"].backward()
    assert all(p.grad is None for p in teacher.parameters())
    np.testing.assert_array_equal(teacher.state_dict()["2.running_mean"].numpy(), before)

    # the same teacher from a `tinyvision train`-style checkpoint
    from tinyvision.models import create_model

    lenet = create_model("lenet5", num_classes=3)
    path = tmp_path / "teacher.ckpt.npz"
    tv.save({"model": {f"model.{k}": v.detach().numpy() for k, v in lenet.state_dict().items()},
             "config": json.dumps({"task": "classify", "model": "lenet5", "kwargs": {"num_classes": 3}})}, path)
    module = DistillationClassifier(create_model("lenet5", num_classes=3), str(path), lambda p: tv.optim.SGD(p, lr=0.1))
    np.testing.assert_allclose(module.teacher(tv.ones(1, 1, 32, 32)).detach().numpy(),
                               lenet.eval()(tv.ones(1, 1, 32, 32)).detach().numpy())


def test_a_teacher_with_other_classes_is_a_clear_error() -> None:
    from tinyvision.models import create_model

    teacher = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))  # no num_classes attribute: caught at the first step
    module = DistillationClassifier(nn.Sequential(nn.Flatten(), nn.Linear(12, 3)), teacher,
                                    lambda p: tv.optim.SGD(p, lr=0.1))
    with pytest.raises(ValueError, match="teacher predicts 5 classes and the student 3"):
        module.training_step((tv.randn(2, 3, 2, 2), tv.tensor([0, 1])), 0)
    with pytest.raises(ValueError, match="teacher predicts 10 classes and the student 3"):  # caught at once
        DistillationClassifier(create_model("deit_tiny_distilled_patch16_224", num_classes=3, img_size=32,
                                            patch_size=8, depth=1),
                               create_model("vit_tiny_patch16_224", num_classes=10, img_size=32, patch_size=8, depth=1),
                               lambda p: tv.optim.SGD(p, lr=0.1))
    with pytest.raises(ValueError, match="distillation must be one of"):
        DistillationClassifier(teacher, teacher, lambda p: p, distillation="warm")


def test_precomputed_teacher_logits_give_the_same_loss_as_the_teacher() -> None:
    tv.manual_seed(0)
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    student = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    x, y = tv.randn(4, 3, 2, 2), tv.tensor([0, 1, 2, 0])
    online = DistillationClassifier(student, teacher, lambda p: tv.optim.SGD(p, lr=0.1), tau=2.0)
    offline = DistillationClassifier(student, None, lambda p: tv.optim.SGD(p, lr=0.1), tau=2.0)
    with tv.no_grad():
        z_t = teacher(x)
    np.testing.assert_allclose(offline.training_step((x, y, z_t), 0)["loss"].item(),
                               online.training_step((x, y), 0)["loss"].item(), rtol=1e-6)
    with pytest.raises(ValueError, match="must carry the teacher's logits"):
        offline.training_step((x, y), 0)
