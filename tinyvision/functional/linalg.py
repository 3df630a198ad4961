"""Matrix products: ``matmul`` (batched, broadcasting, NumPy's 1-D rules) and ``linear``."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinyvision.autograd.function import Context, Function, sum_to
from tinyvision.autograd.tensor import Tensor
from tinyvision.functional._util import check_tensor
from tinyvision.kernels.compat import array_module


class MatMul(Function):
    @staticmethod
    def forward(ctx: Context, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: both arguments need at least 1 dim, got shapes {a.shape} and {b.shape}")
        ka, kb = a.shape[-1], b.shape[-2] if b.ndim > 1 else b.shape[0]
        if ka != kb:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not fit: "
                             f"the last dim of the first ({ka}) must equal the "
                             f"{'only' if b.ndim == 1 else 'second-to-last'} dim of the second ({kb})")
        try:
            np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        except ValueError:
            raise ValueError(f"matmul: the batch dims of shapes {a.shape} and {b.shape} "
                             f"({a.shape[:-2]} and {b.shape[:-2]}) cannot be broadcast together") from None
        ctx.save_for_backward(a, b)
        if _rows_times_matrix(a, b):  # (..., n, k) @ (k, m) as one GEMM: NumPy's batch loop is ~50x slower
            return (a.reshape(math.prod(a.shape[:-1]), ka) @ b).reshape(*a.shape[:-1], b.shape[1])
        return a @ b

    @staticmethod
    def backward(ctx: Context, grad):
        """C = A B  =>  dL/dA = dL/dC B^T  and  dL/dB = A^T dL/dC, summed over broadcast
        batch dims. A 1-D operand is treated as a row (A) or column (B) vector."""
        a, b = ctx.saved_tensors
        if _rows_times_matrix(a, b):  # the batch dims are just more rows: dB = A^T G over all of them
            rows = math.prod(a.shape[:-1])  # not -1: reshape(-1, 0) is ambiguous when a dim is 0
            G = grad.reshape(rows, b.shape[1])
            ga = (G @ b.T).reshape(a.shape) if ctx.needs_input_grad[0] else None
            gb = a.reshape(rows, b.shape[0]).T @ G if ctx.needs_input_grad[1] else None
            return ga, gb
        A = a[None, :] if a.ndim == 1 else a
        B = b[:, None] if b.ndim == 1 else b
        G = array_module(grad).asarray(grad)  # vector @ vector gives NumPy a scalar, not an array
        if b.ndim == 1:  # put back the dims that 1-D operands dropped: m first, then n
            G = G[..., None]
        if a.ndim == 1:
            G = G[..., None, :]
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = sum_to(G @ B.swapaxes(-1, -2), A.shape).reshape(a.shape)
        if ctx.needs_input_grad[1]:
            gb = sum_to(A.swapaxes(-1, -2) @ G, B.shape).reshape(b.shape)
        return ga, gb


def _rows_times_matrix(a, b) -> bool:
    """(..., n, k) @ (k, m) with batch dims on ``a`` only (Linear on tokens): fold them into rows."""
    return a.ndim > 2 and b.ndim == 2


def matmul(input: Any, other: Any) -> Tensor:
    """Matrix product with NumPy's rules: (..., n, k) @ (..., k, m) -> (..., n, m)."""
    check_tensor("matmul", "input", input, arrays=True)  # x @ ndarray works, as in NumPy
    check_tensor("matmul", "other", other, arrays=True)
    return MatMul.apply(input, other)


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x W^T + b. x: (..., in_features), W: (out_features, in_features), b: (out_features,)."""
    for name, t in (("input", input), ("weight", weight)) + ((("bias", bias),) if bias is not None else ()):
        check_tensor("linear", name, t)
    if input.shape[-1:] != weight.shape[-1:]:
        raise ValueError(f"linear: input of shape {input.shape} has {input.shape[-1] if input.ndim else 0} "
                         f"features but weight of shape {weight.shape} expects {weight.shape[-1]}")
    if bias is not None and bias.shape not in ((weight.shape[0],), ()):
        raise ValueError(f"linear: bias of shape {bias.shape} does not fit weight of shape "
                         f"{weight.shape}: expected ({weight.shape[0]},)")
    out = matmul(input, weight.mT)
    return out if bias is None else out + bias
