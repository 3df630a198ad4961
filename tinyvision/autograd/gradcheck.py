"""gradcheck: compare backward() with central finite differences, in float64.

For a function f of tensors x_1..x_k with a tensor output, pick the scalar
L = sum(f(x) * u) with a fixed random u (so every output element matters). Then

    analytic:  dL/dx_i            from one backward()
    numerical: (L(x + eps e_j) - L(x - eps e_j)) / (2 eps)   for each element j   (mode='full')
               or along random unit directions v:  (L(x + eps v) - L(x - eps v)) / (2 eps)
               compared with <dL/dx, v>                                          (mode='random')

Central differences have error O(eps^2); in float64 with eps = 1e-6 that leaves about 1e-12
of truncation and 1e-10 of rounding, far below any real bug (docs/gradcheck.md).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from tinyvision.autograd.function import no_grad
from tinyvision.autograd.tensor import Tensor
from tinyvision.kernels.compat import to_numpy


class GradcheckError(AssertionError):
    """Analytic and numerical gradients disagree; the message says where and by how much."""


def _loss(fn: Callable, inputs: Sequence[Any], weights: list) -> tuple[Any, float]:
    out = fn(*inputs)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    outs = [o for o in outs if isinstance(o, Tensor) and o.dtype.kind == "f"]
    if not weights:
        rng = np.random.default_rng(1234)
        weights.extend(rng.standard_normal(o.shape) for o in outs)
    total = None
    for o, u in zip(outs, weights):
        term = (o * Tensor(o._xp.asarray(u))).sum()
        total = term if total is None else total + term
    return total, float(total.item()) if total is not None else 0.0


def gradcheck(fn: Callable[..., Any], inputs: Sequence[Any], eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, mode: str = "full", n_directions: int = 8,
              raise_exception: bool = True) -> bool:
    """Check the gradients of ``fn(*inputs)`` w.r.t. every input that requires grad.

    ``inputs`` should be float64 Tensors (others pass through unchanged). ``mode='full'``
    perturbs every element (cost: 2 forwards per element); ``mode='random'`` checks
    ``n_directions`` random directions per input (for large inputs).
    A mismatch |analytic - numerical| > atol + rtol * |numerical| raises
    :class:`GradcheckError` naming the input, the worst element (or direction), both values
    and the absolute and relative error; with ``raise_exception=False`` it returns False.
    """
    if mode not in ("full", "random"):
        raise ValueError(f"gradcheck: mode must be 'full' or 'random', got {mode!r}")
    inputs = list(inputs)
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad; pass tensors with requires_grad=True")
    for i in checked:
        if inputs[i].dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} is {inputs[i].dtype}; finite differences need "
                            "float64 (use .double())")

    weights: list = []
    for i in checked:
        inputs[i].grad = None
    loss, _ = _loss(fn, inputs, weights)
    if loss is None:
        raise ValueError("gradcheck: fn returned no floating-point tensor")
    loss.backward()
    analytic = {i: to_numpy(inputs[i].grad.data) if inputs[i].grad is not None
                else np.zeros(inputs[i].shape) for i in checked}

    def numeric_along(i: int, direction: np.ndarray) -> float:
        x = inputs[i].data
        base = x.copy()
        step = inputs[i]._xp.asarray(direction * eps)
        with no_grad():
            x[...] = base + step
            plus = _loss(fn, inputs, weights)[1]
            x[...] = base - step
            minus = _loss(fn, inputs, weights)[1]
            x[...] = base
        return (plus - minus) / (2 * eps)

    rng = np.random.default_rng(4321)
    for i in checked:
        shape = inputs[i].shape
        if mode == "full":
            num = np.zeros(shape)
            for j in np.ndindex(*shape):
                e = np.zeros(shape)
                e[j] = 1.0
                num[j] = numeric_along(i, e)
            err = np.abs(analytic[i] - num)
            bad = err > atol + rtol * np.abs(num)
            if bad.any():
                j = np.unravel_index(np.argmax(np.where(bad, err, -1)), shape)
                return _fail(raise_exception, f"input {i} (shape {shape}), element {tuple(int(k) for k in j)}",
                             analytic[i][j], num[j])
        else:
            for k in range(n_directions):
                v = rng.standard_normal(shape)
                v /= np.linalg.norm(v) or 1.0
                num = numeric_along(i, v)
                ana = float((analytic[i] * v).sum())
                if abs(ana - num) > atol + rtol * abs(num):
                    return _fail(raise_exception, f"input {i} (shape {shape}), random direction {k}", ana, num)
    return True


def _fail(raise_exception: bool, where: str, analytic: float, numerical: float) -> bool:
    abs_err = abs(analytic - numerical)
    rel_err = abs_err / max(abs(numerical), 1e-300)
    msg = (f"gradcheck failed at {where}: analytic {analytic:.10g}, numerical {numerical:.10g}, "
           f"abs error {abs_err:.3g}, rel error {rel_err:.3g}")
    if raise_exception:
        raise GradcheckError(msg)
    return False
