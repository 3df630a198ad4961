"""tinyvision.optim.lr_scheduler against torch.optim.lr_scheduler: the same schedule on an
optimizer with two parameter groups (different base lrs) gives the same lr (and, for
OneCycleLR, momentum) after construction and after each of 30 steps.

Tolerance: float64, 1e-10 relative (tests/helpers.py). Ours computes each lr in closed form,
torch's step() mostly by a chainable recurrence; both are exact formulas of the same schedule,
so they differ only by rounding (about 1e-15 here).
"""
import numpy as np
import pytest
import torch

import tinyvision as tv
from tests.helpers import tol
from tinyvision import optim
from tinyvision.optim import lr_scheduler as ours_sched

STEPS = 30
LRS = (0.1, 0.02)


def _optimizers(name="SGD", **kwargs):
    """An optimizer of each library over two groups with base lrs LRS."""
    ours = [{"params": [tv.tensor(np.zeros(2), requires_grad=True)], "lr": lr} for lr in LRS]
    theirs = [{"params": [torch.zeros(2, requires_grad=True)], "lr": lr} for lr in LRS]
    return getattr(optim, name)(ours, **kwargs), getattr(torch.optim, name)(theirs, **kwargs)


def _momenta(opt):
    return [g["betas"][0] if "betas" in g else g["momentum"] for g in opt.param_groups]


def _run(opt, scheduler, steps=STEPS):
    """(last_epoch, get_last_lr(), the groups' lr and momentum) after construction and after each step."""
    record = []
    for step in range(steps + 1):
        if step:
            opt.step()  # torch warns when the scheduler steps before the optimizer
            scheduler.step()
        record.append((scheduler.last_epoch, scheduler.get_last_lr(),
                       [g["lr"] for g in opt.param_groups], _momenta(opt)))
    return record


def _compare(ours, theirs):
    for (e1, last1, lr1, m1), (e2, last2, lr2, m2) in zip(ours, theirs, strict=True):
        assert e1 == e2, "last_epoch"
        np.testing.assert_allclose(last1, last2, **tol(np.float64), err_msg=f"get_last_lr at step {e2}")
        np.testing.assert_allclose(lr1, lr2, **tol(np.float64), err_msg=f"group lr at step {e2}")
        np.testing.assert_allclose(m1, m2, **tol(np.float64), err_msg=f"momentum at step {e2}")


SIMPLE = [
    ("StepLR", dict(step_size=7, gamma=0.5)),
    ("MultiStepLR", dict(milestones=[5, 12, 12, 20], gamma=0.3)),
    ("CosineAnnealingLR", dict(T_max=10, eta_min=0.001)),  # 30 steps: down, up, down again
    ("CosineAnnealingLR", dict(T_max=30)),
    ("LinearLR", dict(start_factor=0.1, total_iters=8)),
    ("LinearLR", dict(start_factor=1.0, end_factor=0.0, total_iters=30)),
    ("OneCycleLR", dict(max_lr=[1.0, 0.5], total_steps=STEPS)),
    ("OneCycleLR", dict(max_lr=0.3, total_steps=STEPS, pct_start=0.25, anneal_strategy="linear",
                        div_factor=10.0, final_div_factor=100.0, three_phase=True)),
    ("OneCycleLR", dict(max_lr=0.3, epochs=3, steps_per_epoch=10, cycle_momentum=False)),
]


@pytest.mark.parametrize("name,kwargs", SIMPLE, ids=[f"{n}-{k}" for n, k in SIMPLE])
def test_schedule_matches_torch(name, kwargs):
    ours, theirs = _optimizers(momentum=0.9)
    a = _run(ours, getattr(ours_sched, name)(ours, **kwargs))
    b = _run(theirs, getattr(torch.optim.lr_scheduler, name)(theirs, **kwargs))
    _compare(a, b)
    assert len({round(lr[0], 12) for _, lr, _, _ in a}) > 2, "the schedule did not change the lr"


def test_one_cycle_cycles_adam_beta1():
    ours, theirs = _optimizers("Adam", betas=(0.9, 0.99))
    a = _run(ours, ours_sched.OneCycleLR(ours, max_lr=0.1, total_steps=STEPS, base_momentum=0.8))
    b = _run(theirs, torch.optim.lr_scheduler.OneCycleLR(theirs, max_lr=0.1, total_steps=STEPS, base_momentum=0.8))
    _compare(a, b)
    assert ours.param_groups[0]["betas"][1] == 0.99


def _sequential(lib, opt, kind):
    s = lib.optim.lr_scheduler if lib is torch else ours_sched
    if kind == "warmup-cosine":
        parts = [s.LinearLR(opt, start_factor=0.1, total_iters=5), s.CosineAnnealingLR(opt, T_max=25, eta_min=1e-4)]
        return s.SequentialLR(opt, parts, milestones=[5])
    parts = [s.LinearLR(opt, start_factor=0.5, total_iters=4), s.StepLR(opt, step_size=3, gamma=0.5),
             s.CosineAnnealingLR(opt, T_max=10)]
    return s.SequentialLR(opt, parts, milestones=[6, 15])


@pytest.mark.parametrize("kind", ["warmup-cosine", "three-parts"])
def test_sequential_matches_torch(kind):
    ours, theirs = _optimizers()
    _compare(_run(ours, _sequential(tv, ours, kind)), _run(theirs, _sequential(torch, theirs, kind)))


@pytest.mark.parametrize("kind", ["StepLR", "OneCycleLR", "warmup-cosine"])
def test_state_dict_round_trip_continues_identically(kind):
    """Stop at step 12, rebuild optimizer and scheduler from their checkpoints (scheduler
    built first, then both states loaded, as torch recommends) and go on: the same lrs as
    the uninterrupted run, and as torch's."""
    def build(opt):
        if kind == "StepLR":
            return ours_sched.StepLR(opt, step_size=4, gamma=0.5)
        if kind == "OneCycleLR":
            return ours_sched.OneCycleLR(opt, max_lr=1.0, total_steps=STEPS)
        return _sequential(tv, opt, kind)

    opt = _optimizers(momentum=0.9)[0]
    scheduler = build(opt)
    _run(opt, scheduler, 12)
    opt_state, sched_state = opt.state_dict(), scheduler.state_dict()
    uninterrupted = _run(opt, scheduler, STEPS - 12)[1:]

    opt2 = _optimizers(momentum=0.9)[0]
    scheduler2 = build(opt2)
    opt2.load_state_dict(opt_state)
    scheduler2.load_state_dict(sched_state)
    _compare(_run(opt2, scheduler2, STEPS - 12)[1:], uninterrupted)


def test_one_cycle_refuses_to_step_past_total_steps():
    opt = _optimizers()[0]
    scheduler = ours_sched.OneCycleLR(opt, max_lr=1.0, total_steps=3)
    for _ in range(3):
        scheduler.step()
    with pytest.raises(ValueError, match="stepped 4 times, but total_steps is 3"):
        scheduler.step()


@pytest.mark.parametrize("make,error,match", [
    (lambda o: ours_sched.StepLR(o, step_size=0), ValueError, "step_size must be a positive integer, got 0"),
    (lambda o: ours_sched.CosineAnnealingLR(o, T_max=0), ValueError, "T_max must be a positive integer, got 0"),
    (lambda o: ours_sched.LinearLR(o, start_factor=0.0), ValueError, r"start_factor must be in \(0, 1\], got 0\.0"),
    (lambda o: ours_sched.LinearLR(o, end_factor=1.5), ValueError, r"end_factor must be in \[0, 1\], got 1\.5"),
    (lambda o: ours_sched.OneCycleLR(o, max_lr=1.0), ValueError, "needs total_steps, or epochs and steps_per_epoch"),
    (lambda o: ours_sched.OneCycleLR(o, max_lr=1.0, total_steps=-5), ValueError, "total_steps must be a positive integer, got -5"),
    (lambda o: ours_sched.OneCycleLR(o, max_lr=1.0, total_steps=10, pct_start=1.5), ValueError, r"pct_start .* got 1\.5"),
    (lambda o: ours_sched.OneCycleLR(o, max_lr=1.0, total_steps=10, anneal_strategy="exp"), ValueError, "'cos' or 'linear', got 'exp'"),
    (lambda o: ours_sched.OneCycleLR(o, max_lr=[1.0], total_steps=10), ValueError, "max_lr has 1 values but the optimizer has 2"),
    (lambda o: ours_sched.SequentialLR(o, [ours_sched.StepLR(o, 2)], milestones=[3]), ValueError, "1 milestones for 1 schedulers"),
    (lambda o: ours_sched.StepLR(o, 2, last_epoch=5), KeyError, "has no 'initial_lr'"),
    (lambda o: ours_sched.StepLR("sgd", 2), TypeError, "must be a tinyvision Optimizer, got str"),
])
def test_bad_arguments_are_refused(make, error, match):
    with pytest.raises(error, match=match):
        make(_optimizers()[0])
