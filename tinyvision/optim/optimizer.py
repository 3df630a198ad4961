"""Optimizer: the base class that holds parameter groups and per-parameter state.

A subclass only writes ``_check_group`` (refuse bad options) and ``step`` (the update rule).
Everything else -- grouping, ``zero_grad``, checkpoints -- is here, laid out as in
``torch.optim.Optimizer`` so that a checkpoint reads the same in both libraries:

    {"state":        {0: {"momentum_buffer": ndarray}, 1: {...}, ...},   # by parameter index
     "param_groups": [{"lr": 0.1, "momentum": 0.9, ..., "params": [0, 1]}, ...]}

Parameters are numbered 0, 1, 2... across the groups in order. Updates work on the raw arrays
(``p.data``, ``p.grad.data``) in place, so they record no graph and run unchanged on NumPy or
CuPy: every rule asks ``array_module`` for its ``xp``.
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Iterable

from tinyvision.autograd import Tensor, enable_grad
from tinyvision.kernels import compat

ParamsT = Iterable[Tensor] | Iterable[dict[str, Any]]


def check_non_negative(group: dict[str, Any], *names: str) -> None:
    """Refuse a negative option (lr, momentum, weight_decay...), naming it and its value."""
    for name in names:
        if not group[name] >= 0:  # written so that NaN is refused too
            raise ValueError(f"{name} must be >= 0, got {group[name]!r}")


class Optimizer:
    """Base class of all optimizers.

    ``params``: an iterable of Tensors that require grad, or of dicts (parameter groups), each
    with a ``"params"`` entry and any per-group options (e.g. its own ``"lr"``). ``defaults``:
    the options a group takes when it does not give them.
    """

    def __init__(self, params: ParamsT, defaults: dict[str, Any]) -> None:
        if isinstance(params, Tensor):
            raise TypeError(
                "params must be an iterable of Tensors or dicts, got a single Tensor of shape "
                f"{params.shape}; pass [tensor]"
            )
        self.defaults = defaults
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list (params=[])")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            options = ", ".join(f"{k}={v}" for k, v in sorted(group.items()) if k != "params")
            lines.append(f"  group {i}: {len(group['params'])} params, {options}")
        return "\n".join(lines + [")"])

    # ----------------------------------------------------------------- groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group (a dict with "params" and optional options); missing options take the
        defaults. Useful to start training a frozen layer part-way through."""
        if not isinstance(param_group, dict):
            raise TypeError(f"a param group must be a dict, got {type(param_group).__name__}")
        params = param_group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        index = len(self.param_groups)
        if not params:
            raise ValueError(f"param group {index} has an empty 'params' list")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for i, p in enumerate(params):
            where = f"param group {index}, params[{i}]"
            if not isinstance(p, Tensor):
                raise TypeError(f"{where}: optimizer can only optimize Tensors, got {type(p).__name__}")
            if not p.requires_grad:
                raise ValueError(
                    f"{where} (shape {p.shape}, dtype {p.dtype}) does not require grad; "
                    "create it with requires_grad=True or leave it out"
                )
            if not p.is_leaf:
                raise ValueError(f"{where} (shape {p.shape}) is not a leaf; can't optimize a non-leaf Tensor")
            if id(p) in seen:
                raise ValueError(f"{where} (shape {p.shape}) appears in more than one place")
            seen.add(id(p))
        group = {**self.defaults, **param_group, "params": params}
        self._check_group(group)
        self.param_groups.append(group)

    def _check_group(self, group: dict[str, Any]) -> None:
        """Raise ValueError naming any option of ``group`` out of range (each subclass)."""

    # ----------------------------------------------------------------- gradients and step
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop the gradients (``p.grad = None``, the default, saves memory and lets ``step``
        skip parameters that got none) or set them to zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.data[...] = 0

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient. ``closure``, if given, re-evaluates
        the model and returns the loss (it runs with grad enabled); step returns that loss."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, p.grad.data, self.state.setdefault(p, {}), group)
                    p._bump_version()  # a graph that saved p now refuses backward, as in PyTorch
        return loss

    def _update(self, p: Tensor, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        """Change ``p.data`` in place, given its gradient array, its state and its group."""
        raise NotImplementedError

    # ----------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The state in torch's layout; arrays are NumPy copies (so the checkpoint is
        independent of later steps and can be saved from the GPU)."""
        index = {id(p): i for i, p in enumerate(self._all_params())}
        groups = []
        for group in self.param_groups:
            options = copy.deepcopy({k: v for k, v in group.items() if k != "params"})
            groups.append({**options, "params": [index[id(p)] for p in group["params"]]})
        state = {
            index[id(p)]: {k: compat.to_numpy(v).copy() if compat.is_array(v) else v for k, v in s.items()}
            for p, s in self.state.items()
        }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a ``state_dict()``: the groups' options and each parameter's state. The
        optimizer must hold the same number of groups with the same sizes, in the same order.
        Floating arrays are cast to their parameter's dtype and device, as torch does."""
        saved = state_dict["param_groups"]
        if len(saved) != len(self.param_groups):
            raise ValueError(
                f"loaded state dict has {len(saved)} parameter groups, the optimizer has "
                f"{len(self.param_groups)}"
            )
        for i, (s, g) in enumerate(zip(saved, self.param_groups)):
            if len(s["params"]) != len(g["params"]):
                raise ValueError(
                    f"loaded param group {i} has {len(s['params'])} params, the optimizer's has "
                    f"{len(g['params'])}"
                )
        params = {i: p for s, g in zip(saved, self.param_groups) for i, p in zip(s["params"], g["params"])}
        self.state = {}
        for i, s in state_dict["state"].items():
            p = params[int(i)]
            self.state[p] = {k: _like_param(v, p) for k, v in s.items()}
        self.param_groups = [
            {**copy.deepcopy({k: v for k, v in s.items() if k != "params"}), "params": g["params"]}
            for s, g in zip(saved, self.param_groups)
        ]

    def _all_params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]


def _like_param(value: Any, p: Tensor) -> Any:
    """A saved array as a fresh array on p's device, in p's dtype when it is floating."""
    if not compat.is_array(value):
        return value
    dtype = p.dtype if value.dtype.kind == "f" else value.dtype
    return compat.to_device(compat.to_numpy(value), p.device).astype(dtype, copy=True)
