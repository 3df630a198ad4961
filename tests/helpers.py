"""Helpers for comparing tinyvision with PyTorch on the same inputs.

Tolerances (stated once, here): float64 results must agree to ~1e-10 relative, since both
sides do the same arithmetic in double precision and only the summation order differs;
float32 to ~1e-5 relative / 1e-6 absolute for elementwise work, and looser only where an op
sums many terms (then the test says why).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

import tinyvision as tv

TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-6)}
DTYPES = [np.float32, np.float64]


def tol(dtype: Any, scale: float = 1.0) -> dict:
    """The tolerance for ``dtype``; ``scale`` > 1 only for long reductions (say why)."""
    t = TOL[np.dtype(dtype).type]
    return dict(rtol=t["rtol"] * scale, atol=t["atol"] * scale)


def both(arrays: Sequence[np.ndarray], requires_grad: Sequence[bool] | None = None):
    """The same arrays as tinyvision and as torch tensors (float arrays require grad)."""
    requires_grad = requires_grad or [a.dtype.kind == "f" for a in arrays]
    ours = [tv.tensor(a, requires_grad=r) for a, r in zip(arrays, requires_grad)]
    theirs = [torch.tensor(a, requires_grad=r) for a, r in zip(arrays, requires_grad)]
    return ours, theirs


def check_against_torch(ours_fn: Callable, torch_fn: Callable, arrays: Sequence[np.ndarray],
                        dtype: Any = None, scale: float = 1.0, requires_grad: Sequence[bool] | None = None) -> None:
    """Run both functions on the same inputs; compare outputs and the input gradients of
    sum(out * u) for a fixed random u."""
    ours, theirs = both(arrays, requires_grad)
    a, b = ours_fn(*ours), torch_fn(*theirs)
    assert tuple(a.shape) == tuple(b.shape), f"shape {tuple(a.shape)}, torch has {tuple(b.shape)}"
    dtype = dtype or next(x.dtype for x in arrays if x.dtype.kind == "f")
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), **tol(dtype, scale))
    if not b.requires_grad:
        return
    # a seed no test uses for its inputs: weights equal to the input would make some
    # gradients (e.g. normalisation) cancel to ~0 and test nothing
    u = np.random.default_rng(987654).standard_normal(b.shape).astype(b.detach().numpy().dtype)
    (a * tv.tensor(u)).sum().backward()
    (b * torch.tensor(u)).sum().backward()
    for i, (x, y) in enumerate(zip(ours, theirs)):
        if y.requires_grad:
            gy = y.grad.numpy() if y.grad is not None else np.zeros(y.shape)
            gx = x.grad.numpy() if x.grad is not None else np.zeros(x.shape)
            np.testing.assert_allclose(gx, gy, **tol(dtype, scale), err_msg=f"gradient of input {i}")


def check_op(ours_fn: Callable, torch_fn: Callable, arrays: Sequence[np.ndarray],
             requires_grad: Sequence[bool] | None = None) -> None:
    """The standard proof of an op: forward and gradients against torch in float32 and
    float64 on the same values, then ``tv.gradcheck`` in float64. ``requires_grad`` marks the
    inputs to differentiate (default: the float ones); every float array (weights too) is
    cast to each dtype."""
    arrays = list(arrays)
    grad = list(requires_grad) if requires_grad is not None else [a.dtype.kind == "f" for a in arrays]
    for dtype in DTYPES:
        cast = [a.astype(dtype) if a.dtype.kind == "f" else a for a in arrays]
        check_against_torch(ours_fn, torch_fn, cast, dtype=dtype, requires_grad=grad)
    inputs = [tv.tensor(a.astype(np.float64) if a.dtype.kind == "f" else a, requires_grad=g)
              for a, g in zip(arrays, grad)]
    assert tv.gradcheck(ours_fn, inputs)
