"""DINO's pieces against torch: the head (weight-normalised prototypes, torch.nn.utils.weight_norm,
forward and gradients in float64), the loss with centering and temperatures written from the
paper's pseudo-code, the schedules and the EMA step."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tinyvision as tv
from tinyvision.models.dino import (DINOHead, DINOLoss, ema_update, momentum_schedule,
                                    teacher_temperature_schedule)

RNG = np.random.default_rng(0)


def test_head_matches_torch_with_weight_norm() -> None:
    tv.manual_seed(0)
    head = DINOHead(6, out_dim=5, hidden_dim=8, bottleneck_dim=4, norm_last_layer=False).to(np.float64)
    head.last_layer.weight_g.data[...] = RNG.uniform(0.5, 1.5, (5, 1))
    nn = torch.nn
    mlp = nn.Sequential(nn.Linear(6, 8), nn.GELU(), nn.Linear(8, 8), nn.GELU(), nn.Linear(8, 4)).double()
    last = torch.nn.utils.weight_norm(nn.Linear(4, 5, bias=False).double())
    with torch.no_grad():
        for i in (0, 2, 4):
            mlp[i].weight.copy_(torch.tensor(head.mlp[i].weight.detach().numpy()))
            mlp[i].bias.copy_(torch.tensor(head.mlp[i].bias.detach().numpy()))
        last.weight_g.copy_(torch.tensor(head.last_layer.weight_g.detach().numpy()))
        last.weight_v.copy_(torch.tensor(head.last_layer.weight_v.detach().numpy()))
    assert list(head.state_dict()) == [f"mlp.{k}" for k in ("0.weight", "0.bias", "2.weight", "2.bias", "4.weight",
                                                               "4.bias")] + ["last_layer.weight_g", "last_layer.weight_v"]
    x = RNG.standard_normal((3, 6))
    ours = head(tv.tensor(x))
    theirs = last(torch.nn.functional.normalize(mlp(torch.tensor(x)), dim=-1))
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-12, atol=1e-14)
    w = RNG.standard_normal((3, 5))
    (ours * tv.tensor(w)).sum().backward()
    (theirs * torch.tensor(w)).sum().backward()
    for ours_p, theirs_p in ((head.last_layer.weight_v, last.weight_v), (head.last_layer.weight_g, last.weight_g),
                             (head.mlp[0].weight, mlp[0].weight)):
        np.testing.assert_allclose(ours_p.grad.numpy(), theirs_p.grad.numpy(), rtol=1e-9, atol=1e-13)
    assert not DINOHead(6, 5, 8, 4).last_layer.weight_g.requires_grad  # norm_last_layer: g fixed at 1


def test_loss_matches_the_papers_pseudo_code_and_moves_the_center() -> None:
    n, k, crops = 3, 7, 4
    student, teacher = RNG.standard_normal((crops * n, k)), RNG.standard_normal((2 * n, k))
    loss_fn = DINOLoss(k, crops, warmup_teacher_temp=0.04, teacher_temp=0.07, warmup_teacher_temp_epochs=3,
                       epochs=10).to(np.float64)
    center0 = RNG.standard_normal((1, k)) * 0.1
    loss_fn.center.data[...] = center0
    s = tv.tensor(student, requires_grad=True)
    loss = loss_fn(s, tv.tensor(teacher), epoch=1)
    loss.backward()

    ts = torch.tensor(student, requires_grad=True)
    temp = 0.055  # halfway through the warm-up from 0.04 to 0.07
    q = torch.softmax((torch.tensor(teacher) - torch.tensor(center0)) / temp, -1).chunk(2)
    log_p = torch.log_softmax(ts / 0.1, -1).chunk(crops)
    pairs = [(-q[i] * log_p[v]).sum(-1).mean() for i in range(2) for v in range(crops) if v != i]
    expected = sum(pairs) / len(pairs)
    expected.backward()
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=1e-12)
    np.testing.assert_allclose(s.grad.numpy(), ts.grad.numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(loss_fn.center.numpy(), 0.9 * center0 + 0.1 * teacher.mean(0, keepdims=True),
                               rtol=1e-12)
    with pytest.raises(ValueError, match="n_crops must be >= 2"):
        DINOLoss(k, 1)


def test_schedules_and_ema_step() -> None:
    np.testing.assert_allclose(teacher_temperature_schedule(0.04, 0.07, 4, 6), [0.04, 0.05, 0.06, 0.07, 0.07, 0.07])
    m = momentum_schedule(0.996, 100)
    assert m[0] == pytest.approx(0.996) and m[-1] == pytest.approx(1.0, abs=1e-6) and (np.diff(m) > 0).all()
    student, teacher = DINOHead(4, 3, 5, 2), DINOHead(4, 3, 5, 2)
    before = {k: v.detach().numpy().copy() for k, v in teacher.state_dict().items()}
    ema_update(teacher, student, 0.9)
    for key, value in student.state_dict().items():
        np.testing.assert_allclose(teacher.state_dict()[key].detach().numpy(),
                                   0.9 * before[key] + 0.1 * value.detach().numpy(), rtol=1e-6)


def test_head_and_loss_gradients_match_finite_differences() -> None:
    tv.manual_seed(0)
    head = DINOHead(3, out_dim=4, hidden_dim=5, bottleneck_dim=3, norm_last_layer=False).to(np.float64)
    x = tv.tensor(RNG.standard_normal((2, 3)), requires_grad=True)
    assert tv.gradcheck(lambda x, v, g: head(x), (x, head.last_layer.weight_v, head.last_layer.weight_g))
    loss_fn = DINOLoss(4, 3, epochs=2).to(np.float64)
    teacher = tv.tensor(RNG.standard_normal((4, 4)))
    s = tv.tensor(RNG.standard_normal((6, 4)), requires_grad=True)
    loss_fn.center_momentum = 1.0  # keep the center still while finite differences call the loss again and again
    assert tv.gradcheck(lambda s: loss_fn(s, teacher, 0), (s,))
