"""Learning-rate schedules, as ``torch.optim.lr_scheduler``.

A scheduler owns a counter ``last_epoch`` (the number of ``step()`` calls so far; the
constructor makes the first call, so a new scheduler is at 0) and writes
``group["lr"] = schedule(last_epoch)`` into each parameter group of its optimizer. Call
``scheduler.step()`` after ``optimizer.step()``, once per epoch or once per batch.

Each schedule here is written in closed form, lr(t) from the group's ``base_lr`` (its
``initial_lr``). torch's ``step()`` computes most of them as a *chainable* recurrence,
lr(t) = f(t) * lr(t - 1), which gives the same values (to rounding, ~1e-16 relative) as long
as nothing else changes ``group["lr"]`` between steps; stacking two schedulers on one
optimizer at once (torch's ChainedScheduler) is therefore not supported here.
"""
from __future__ import annotations

import copy
import math
from bisect import bisect_right
from typing import Any, Iterable, Sequence

from tinyvision.optim.optimizer import Optimizer


class LRScheduler:
    """Base class: subclasses write ``get_lr()``, the lrs at step ``self.last_epoch``."""

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        _check_optimizer(optimizer)
        self.optimizer = optimizer
        for i, group in enumerate(optimizer.param_groups):
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise KeyError(
                    f"param_groups[{i}] has no 'initial_lr': resuming with last_epoch={last_epoch} "
                    "needs the optimizer's state restored first"
                )
        self.base_lrs: list[float] = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()  # the initial step: last_epoch -1 -> 0 and lr = schedule(0), as torch

    def get_lr(self) -> list[float]:
        """The learning rate of each group at step ``self.last_epoch``."""
        raise NotImplementedError

    def step(self) -> None:
        """Advance one step and write the new lrs into the optimizer."""
        self.last_epoch += 1
        self._last_lr = self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group["lr"] = lr

    def get_last_lr(self) -> list[float]:
        """The lrs written by the last step (one per parameter group)."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """Every attribute but the optimizer (torch's layout), copied."""
        return {k: copy.deepcopy(v) for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.__dict__.update(copy.deepcopy(state_dict))


class StepLR(LRScheduler):
    """lr(t) = base_lr * gamma ** floor(t / step_size): decay by gamma every step_size steps."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1) -> None:
        _check_positive_int("step_size", step_size)
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]


class MultiStepLR(LRScheduler):
    """lr(t) = base_lr * gamma ** (number of milestones <= t): decay by gamma at each milestone
    (a milestone listed twice decays twice, as torch)."""

    def __init__(self, optimizer: Optimizer, milestones: Iterable[int], gamma: float = 0.1,
                 last_epoch: int = -1) -> None:
        self.milestones = sorted(milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [base * self.gamma ** bisect_right(self.milestones, self.last_epoch) for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """lr(t) = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2 (SGDR without
    restarts): half a cosine from base_lr down to eta_min over T_max steps. Past T_max it
    keeps following the cosine (back up over the next T_max steps), as torch's does."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1) -> None:
        _check_positive_int("T_max", T_max)
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        cosine = (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
        return [self.eta_min + (base - self.eta_min) * cosine for base in self.base_lrs]


class LinearLR(LRScheduler):
    """lr(t) = base_lr * (start_factor + (end_factor - start_factor) * min(t, total_iters) / total_iters):
    a linear ramp of the factor over total_iters steps, then constant (the usual warm-up)."""

    def __init__(self, optimizer: Optimizer, start_factor: float = 1.0 / 3, end_factor: float = 1.0,
                 total_iters: int = 5, last_epoch: int = -1) -> None:
        if not 0 < start_factor <= 1:
            raise ValueError(f"start_factor must be in (0, 1], got {start_factor!r}")
        if not 0 <= end_factor <= 1:
            raise ValueError(f"end_factor must be in [0, 1], got {end_factor!r}")
        _check_positive_int("total_iters", total_iters)
        self.start_factor, self.end_factor, self.total_iters = start_factor, end_factor, total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        done = min(self.total_iters, self.last_epoch) / self.total_iters
        factor = self.start_factor + (self.end_factor - self.start_factor) * done
        return [base * factor for base in self.base_lrs]


class SequentialLR(LRScheduler):
    """Run ``schedulers[i]`` from step ``milestones[i-1]`` on; at each milestone the next one
    restarts from its own step 0 (e.g. a LinearLR warm-up, then CosineAnnealingLR)."""

    def __init__(self, optimizer: Optimizer, schedulers: Sequence[LRScheduler], milestones: Sequence[int],
                 last_epoch: int = -1) -> None:
        if len(schedulers) < 1:
            raise ValueError("SequentialLR needs at least one scheduler, got none")
        for i, s in enumerate(schedulers):
            if s.optimizer is not optimizer:
                raise ValueError(f"schedulers[{i}] ({type(s).__name__}) belongs to another optimizer")
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(
                f"SequentialLR needs len(milestones) == len(schedulers) - 1, got {len(milestones)} "
                f"milestones for {len(schedulers)} schedulers"
            )
        if list(milestones) != sorted(milestones):
            raise ValueError(f"milestones must be increasing, got {list(milestones)}")
        self.optimizer = optimizer
        self._schedulers = list(schedulers)
        self._milestones = list(milestones)
        self.last_epoch = last_epoch + 1
        # Each scheduler made its own initial step when built; undo them (torch's
        # recursive_undo) and start only the one that owns step 0.
        for s in self._schedulers:
            s.last_epoch -= 1
        first = self._schedulers[bisect_right(self._milestones, 0)]
        first.step()
        self._last_lr = first.get_last_lr()

    def step(self) -> None:
        self.last_epoch += 1
        i = bisect_right(self._milestones, self.last_epoch)
        # At its milestone a scheduler is still at last_epoch -1, so this step is its step 0
        # (torch calls _update_lr(0) there, to leave its recurrence for the closed form).
        scheduler = self._schedulers[i]
        scheduler.step()
        self._last_lr = scheduler.get_last_lr()

    def state_dict(self) -> dict[str, Any]:
        state = {k: copy.deepcopy(v) for k, v in self.__dict__.items() if k not in ("optimizer", "_schedulers")}
        state["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        for s, saved in zip(self._schedulers, state.pop("_schedulers")):
            s.load_state_dict(saved)
        super().load_state_dict(state)


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin, 2017), set per batch for ``total_steps`` steps.

    The lr rises from initial_lr = max_lr / div_factor to max_lr over the first
    ``pct_start * total_steps`` steps, then anneals to min_lr = initial_lr / final_div_factor
    at step total_steps - 1. With ``three_phase`` it comes back down to initial_lr
    symmetrically first and only then anneals to min_lr. Between two phase ends ``a -> b`` the
    value is anneal(start, end, pct = (t - a) / (b - a)), with

        cos:    end + (start - end) * (1 + cos(pi * pct)) / 2
        linear: start + (end - start) * pct

    Phase ends are pct_start * total_steps - 1 (and 2 * pct_start * total_steps - 2 for three
    phases) and total_steps - 1, as torch. With ``cycle_momentum`` (torch's default) the
    momentum (SGD) or beta1 (Adam) moves the opposite way, max_momentum -> base_momentum ->
    max_momentum. Stepping past total_steps raises.
    """

    def __init__(self, optimizer: Optimizer, max_lr: float | Sequence[float], total_steps: int | None = None,
                 epochs: int | None = None, steps_per_epoch: int | None = None, pct_start: float = 0.3,
                 anneal_strategy: str = "cos", cycle_momentum: bool = True,
                 base_momentum: float | Sequence[float] = 0.85, max_momentum: float | Sequence[float] = 0.95,
                 div_factor: float = 25.0, final_div_factor: float = 1e4, three_phase: bool = False,
                 last_epoch: int = -1) -> None:
        _check_optimizer(optimizer)
        if total_steps is None:
            if epochs is None or steps_per_epoch is None:
                raise ValueError("OneCycleLR needs total_steps, or epochs and steps_per_epoch")
            _check_positive_int("epochs", epochs)
            _check_positive_int("steps_per_epoch", steps_per_epoch)
            total_steps = epochs * steps_per_epoch
        _check_positive_int("total_steps", total_steps)
        if not isinstance(pct_start, float) or not 0 <= pct_start <= 1:
            raise ValueError(f"pct_start must be a float in [0, 1], got {pct_start!r}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self.total_steps = total_steps
        self.anneal_strategy = anneal_strategy
        # Each phase anneals group[start_*] -> group[end_*] and ends at step end_step.
        rise = float(pct_start * total_steps) - 1
        up = ("initial_lr", "max_lr", "max_momentum", "base_momentum")
        if three_phase:
            ends = [rise, float(2 * pct_start * total_steps) - 2, total_steps - 1]
            keys = [up, ("max_lr", "initial_lr", "base_momentum", "max_momentum"),
                    ("initial_lr", "min_lr", "max_momentum", "max_momentum")]
        else:
            ends = [rise, total_steps - 1]
            keys = [up, ("max_lr", "min_lr", "base_momentum", "max_momentum")]
        self._phases = [dict(end_step=end, start_lr=k[0], end_lr=k[1], start_momentum=k[2], end_momentum=k[3])
                        for end, k in zip(ends, keys)]
        groups = optimizer.param_groups
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ValueError("cycle_momentum=True needs an optimizer with momentum (SGD) or betas (Adam)")
            self.use_beta1 = "betas" in optimizer.defaults
        if last_epoch == -1:
            for group, top in zip(groups, _per_group("max_lr", max_lr, groups)):
                group["initial_lr"] = top / div_factor
                group["max_lr"] = top
                group["min_lr"] = group["initial_lr"] / final_div_factor
            if cycle_momentum:
                for group, top, low in zip(groups, _per_group("max_momentum", max_momentum, groups),
                                           _per_group("base_momentum", base_momentum, groups)):
                    group["max_momentum"], group["base_momentum"] = top, low
        super().__init__(optimizer, last_epoch)

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def _interpolate(self, group: dict[str, Any], what: str) -> float:
        """The value of ``what`` ("lr" or "momentum") for ``group`` at step last_epoch."""
        t = self.last_epoch
        if t > self.total_steps:
            raise ValueError(f"OneCycleLR stepped {t} times, but total_steps is {self.total_steps}")
        phase_start = 0.0
        for i, phase in enumerate(self._phases):
            end = phase["end_step"]
            if t <= end or i == len(self._phases) - 1:
                pct = (t - phase_start) / (end - phase_start)
                return self._anneal(group[phase[f"start_{what}"]], group[phase[f"end_{what}"]], pct)
            phase_start = end
        raise AssertionError("unreachable: the last phase always matches")

    def get_lr(self) -> list[float]:
        return [self._interpolate(group, "lr") for group in self.optimizer.param_groups]

    def step(self) -> None:
        super().step()
        if self.cycle_momentum:
            for group in self.optimizer.param_groups:
                self._set_momentum(group, self._interpolate(group, "momentum"))

    def _set_momentum(self, group: dict[str, Any], value: float) -> None:
        if self.use_beta1:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value


def _check_optimizer(optimizer: Any) -> None:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a tinyvision Optimizer, got {type(optimizer).__name__}")


def _check_positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _per_group(name: str, value: float | Sequence[float], groups: list[dict]) -> list[float]:
    """One value per parameter group: a scalar is repeated, a list must match the groups."""
    if isinstance(value, (list, tuple)):
        if len(value) != len(groups):
            raise ValueError(f"{name} has {len(value)} values but the optimizer has {len(groups)} param groups")
        return list(value)
    return [value] * len(groups)
