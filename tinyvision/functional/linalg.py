"""Matrix products: ``matmul`` (batched, broadcasting, NumPy's 1-D rules), ``linear``, the
named forms (``mm``, ``bmm``, ``addmm``, ``outer``), ``einsum``; triangles and diagonals
(``tril``, ``triu``, ``diag``); pairwise distances (``cdist``)."""
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
            return (a.reshape(_rows(a), ka) @ b).reshape(*a.shape[:-1], b.shape[1])
        return a @ b

    @staticmethod
    def backward(ctx: Context, grad):
        """C = A B  =>  dL/dA = dL/dC B^T  and  dL/dB = A^T dL/dC, summed over broadcast
        batch dims. A 1-D operand is treated as a row (A) or column (B) vector."""
        a, b = ctx.saved_tensors
        if _rows_times_matrix(a, b):  # the batch dims are just more rows: dB = A^T G over all of them
            G = grad.reshape(_rows(a), b.shape[1])
            ga = (G @ b.T).reshape(a.shape) if ctx.needs_input_grad[0] else None
            gb = a.reshape(_rows(a), b.shape[0]).T @ G if ctx.needs_input_grad[1] else None
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


def _rows(a) -> int:
    """The number of rows of ``a`` seen as a matrix (every dim but the last); written out, not
    -1, which NumPy cannot infer when a dim is 0."""
    return int(np.prod(a.shape[:-1]))


def _rows_times_matrix(a, b) -> bool:
    """(..., n, k) @ (k, m) with batch dims on ``a`` only (Linear on tokens): fold them into rows."""
    return a.ndim > 2 and b.ndim == 2


def matmul(input: Any, other: Any) -> Tensor:
    """Matrix product with NumPy's rules: (..., n, k) @ (..., k, m) -> (..., n, m)."""
    check_tensor("matmul", "input", input, arrays=True)  # x @ ndarray works, as in NumPy
    check_tensor("matmul", "other", other, arrays=True)
    return MatMul.apply(input, other)


class Linear(Function):
    """y = x W^T + b as one node: one GEMM on the rows of x (every dim but the last), the bias
    added into the GEMM's output in place (no second array, no second node).

        dL/dx = G W,   dL/dW = G^T x,   dL/db = sum of G over the rows
    with G the output gradient seen as (rows, out_features)."""

    @staticmethod
    def forward(ctx: Context, x, w, b):
        rows = _rows(x)
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        y = x.reshape(rows, x.shape[-1]) @ w.T  # w.T is a view: BLAS reads it transposed
        if b is not None:
            y += b
        return y.reshape(*x.shape[:-1], w.shape[0])

    @staticmethod
    def backward(ctx: Context, grad):
        x, w = ctx.saved_tensors
        rows = _rows(x)
        G = grad.reshape(rows, w.shape[0])
        gx = (G @ w).reshape(x.shape) if ctx.needs_input_grad[0] else None
        gw = G.T @ x.reshape(rows, x.shape[-1]) if ctx.needs_input_grad[1] else None
        gb = G.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return gx, gw, gb


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x W^T + b. x: (..., in_features), W: (out_features, in_features), b: (out_features,)."""
    for name, t in (("input", input), ("weight", weight)) + ((("bias", bias),) if bias is not None else ()):
        check_tensor("linear", name, t)
    if input.ndim == 0 or weight.ndim != 2:
        raise ValueError(f"linear: input must have at least 1 dim and weight must be (out_features, "
                         f"in_features), got shapes {input.shape} and {weight.shape}")
    if input.shape[-1:] != weight.shape[-1:]:
        raise ValueError(f"linear: input of shape {input.shape} has {input.shape[-1] if input.ndim else 0} "
                         f"features but weight of shape {weight.shape} expects {weight.shape[-1]}")
    if bias is not None and bias.shape not in ((weight.shape[0],), ()):
        raise ValueError(f"linear: bias of shape {bias.shape} does not fit weight of shape "
                         f"{weight.shape}: expected ({weight.shape[0]},)")
    if bias is not None and bias.ndim == 0:
        bias = bias.expand(weight.shape[0])  # a 0-d bias broadcasts; the node sums its gradient back
    return Linear.apply(input, weight, bias)


# ------------------------------------------------------------------ named matrix products
def _check_rank(op: str, name: str, t: Tensor, ndim: int) -> None:
    if t.ndim != ndim:
        raise ValueError(f"{op}: {name} must be a {ndim}-D tensor, got shape {t.shape}")


def _check_inner(op: str, a: Tensor, b: Tensor) -> None:
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"{op}: shapes {a.shape} and {b.shape} cannot be multiplied "
                         f"({a.shape[-2]}x{a.shape[-1]} and {b.shape[-2]}x{b.shape[-1]})")


def mm(input: Tensor, mat2: Tensor) -> Tensor:
    """(n, k) @ (k, m) -> (n, m), matrices only (no broadcasting, unlike matmul)."""
    _check_rank("mm", "input", input, 2)
    _check_rank("mm", "mat2", mat2, 2)
    _check_inner("mm", input, mat2)
    return matmul(input, mat2)


def bmm(input: Tensor, mat2: Tensor) -> Tensor:
    """(b, n, k) @ (b, k, m) -> (b, n, m): one product per batch entry, batch sizes equal."""
    _check_rank("bmm", "input", input, 3)
    _check_rank("bmm", "mat2", mat2, 3)
    if input.shape[0] != mat2.shape[0]:
        raise ValueError(f"bmm: batch sizes differ: input {input.shape}, mat2 {mat2.shape}")
    _check_inner("bmm", input, mat2)
    return matmul(input, mat2)


def addmm(input: Tensor, mat1: Tensor, mat2: Tensor, *, beta: float = 1, alpha: float = 1) -> Tensor:
    """beta * input + alpha * (mat1 @ mat2); input broadcasts to (n, m). With beta = 0 input
    is ignored (NaN in it does not spread), as in PyTorch."""
    product = mm(mat1, mat2)
    if alpha != 1:
        product = product * alpha
    if beta == 0:
        np.broadcast_shapes(input.shape, product.shape)
        return product
    return product + (input if beta == 1 else input * beta)


def outer(input: Tensor, vec2: Tensor) -> Tensor:
    """(n,) x (m,) -> (n, m), out[i, j] = input[i] * vec2[j]."""
    _check_rank("outer", "input", input, 1)
    _check_rank("outer", "vec2", vec2, 1)
    return input.reshape(-1, 1) * vec2.reshape(1, -1)


ger = outer


def kron(input: Tensor, other: Tensor) -> Tensor:
    """Kronecker product: block (i, j, ...) of the result is input[i, j, ...] * other.
    Shapes (a0, a1, ...) and (b0, b1, ...) give (a0 b0, a1 b1, ...) (the shorter padded with
    leading 1s). Written as a broadcast product of (a0, 1, a1, 1, ...) and (1, b0, 1, b1, ...)
    reshaped, so the gradient is the product's."""
    n = max(input.ndim, other.ndim)
    a_shape = (1,) * (n - input.ndim) + input.shape
    b_shape = (1,) * (n - other.ndim) + other.shape
    a = input.reshape([d for k in a_shape for d in (k, 1)])
    b = other.reshape([d for k in b_shape for d in (1, k)])
    return (a * b).reshape([x * y for x, y in zip(a_shape, b_shape)])


# ------------------------------------------------------------------ einsum
def contract(inputs: list[str], output: str, *arrays):
    """einsum on raw arrays as transposes, reshapes and batched matmuls (no NumPy einsum loop
    over products). ``inputs`` and ``output`` are written out in full ('bhqd', 'bhkd' -> 'bhqk').

    1. Each operand alone: take the diagonal of a repeated letter and sum a letter no other
       operand and not the output needs (a one-operand einsum: no products).
    2. Contract left to right, two at a time (``_pair``): one batched matmul per pair.
    3. Put the remaining letters in the output's order.
    """
    xp = array_module(*arrays)
    ops = []
    for k, (subs, a) in enumerate(zip(inputs, arrays)):
        needed = output + "".join(t for j, t in enumerate(inputs) if j != k)
        keep = "".join(c for c in dict.fromkeys(subs) if c in needed)
        ops.append((keep, a if keep == subs else xp.asarray(xp.einsum(f"{subs}->{keep}", a))))
    subs, a = ops[0]
    for j in range(1, len(ops)):
        subs, a = _pair(subs, a, *ops[j], output + "".join(t for t, _ in ops[j + 1:]))
    return xp.asarray(a).transpose([subs.index(c) for c in output])


def _pair(s: str, a, t: str, b, rest: str):
    """Contract operands ``a`` (letters ``s``) and ``b`` (``t``), keeping the letters that
    ``rest`` (the output and the operands still to come) needs. Every letter is

        batch       in both and kept      -> B
        contracted  in both, not kept     -> C (summed by the matmul)
        free        in one only, kept     -> F_a or F_b
        (a letter in one only and not kept is summed first)

    so the pair is one batched matmul (B, F_a, C) @ (B, C, F_b) -> (B, F_a, F_b)."""
    xp = array_module(a, b)
    a, s = _sum_unneeded(a, s, t + rest)
    b, t = _sum_unneeded(b, t, s + rest)
    size = dict(zip(s, a.shape)) | dict(zip(t, b.shape))
    batch = "".join(c for c in s if c in t and c in rest)
    summed = "".join(c for c in s if c in t and c not in rest)
    free_a = "".join(c for c in s if c not in t)
    free_b = "".join(c for c in t if c not in s)

    def matrices(x, subs: str, order: tuple[str, str, str]):
        letters = "".join(order)
        x = x.transpose([subs.index(c) for c in letters])
        return x.reshape([math.prod(size[c] for c in part) for part in order])

    out = xp.matmul(matrices(a, s, (batch, free_a, summed)), matrices(b, t, (batch, summed, free_b)))
    letters = batch + free_a + free_b
    return letters, out.reshape([size[c] for c in letters])


def _sum_unneeded(x, subs: str, needed: str):
    """Sum the axes of ``x`` whose letter ``needed`` lacks."""
    drop = tuple(i for i, c in enumerate(subs) if c not in needed)
    if not drop:
        return x, subs
    return x.sum(axis=drop), "".join(c for c in subs if c in needed)


class Einsum(Function):
    """out = einsum(equation, *operands), equation written out in full ('ij,jk->ik').

    Forward: ``contract``: transposes and reshapes that turn each pair of operands into
    stacks of matrices, and one batched matmul per pair.

    Backward: out is linear in each operand, so dL/d(operand k) is the einsum of the output
    gradient with all the *other* operands, read out with operand k's subscripts: for
    'ij,jk->ik', dA = einsum('ik,jk->ij', G, B) = G B^T and dB = einsum('ik,ij->jk', G, A)
    = A^T G, the two matmul gradients. Two details: a letter only operand k has (summed
    away, e.g. 'ij->i') gets the gradient broadcast along it, and a letter operand k repeats
    (a diagonal, 'ii->i') gets it written back onto that diagonal.
    """

    @staticmethod
    def forward(ctx: Context, inputs: list[str], output: str, *operands):
        ctx.inputs, ctx.output = inputs, output
        ctx.save_for_backward(*operands)
        return contract(inputs, output, *operands)

    @staticmethod
    def backward(ctx: Context, grad):
        operands = ctx.saved_tensors
        xp = array_module(grad)
        sizes = {c: n for subs, op in zip(ctx.inputs, operands) for c, n in zip(subs, op.shape)}
        grads = []
        for k, (subs, op) in enumerate(zip(ctx.inputs, operands)):
            if not ctx.needs_input_grad[2 + k]:
                grads.append(None)
                continue
            others = [(s, o) for j, (s, o) in enumerate(zip(ctx.inputs, operands)) if j != k]
            seen = ctx.output + "".join(s for s, _ in others)
            letters = "".join(dict.fromkeys(subs))  # each letter once, in order
            kept = "".join(c for c in letters if c in seen)
            g = contract([ctx.output] + [s for s, _ in others], kept, grad, *[o for _, o in others])
            # letters summed inside operand k alone: the gradient is the same all along them
            g = xp.broadcast_to(g.reshape([sizes[c] if c in kept else 1 for c in letters]),
                                [sizes[c] for c in letters])
            if len(letters) == len(subs):  # no repeated letter: just put the axes in order
                grads.append(g.transpose([letters.index(c) for c in subs]))
                continue
            # a repeated letter is a diagonal: write g there, zeros elsewhere
            full = xp.zeros(op.shape, dtype=grad.dtype)
            grid = {c: xp.arange(sizes[c]).reshape([-1 if c == d else 1 for d in letters]) for c in letters}
            full[tuple(grid[c] for c in subs)] = g
            grads.append(full)
        return (None, None, *grads)


def _parse_einsum(equation: str, shapes: list[tuple[int, ...]]) -> tuple[list[str], str]:
    """Split 'ij,jk->ik' into (['ij', 'jk'], 'ik'): spaces dropped, '...' written out as
    capital letters (right-aligned, as broadcasting aligns dims), and the implicit output (no
    '->') made explicit: the letters used once, in alphabetical order, after the '...' dims."""
    eq = equation.replace(" ", "")
    lhs, arrow, out = eq.partition("->")
    inputs = lhs.split(",")
    if len(inputs) != len(shapes):
        raise ValueError(f"einsum: equation {equation!r} names {len(inputs)} operands, got {len(shapes)}")
    n_ell = max((len(s) - len(subs.replace("...", "")) for subs, s in zip(inputs, shapes) if "..." in subs), default=0)
    ell = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[:n_ell]
    written = []
    for subs, shape in zip(inputs, shapes):
        if "..." in subs:
            k = len(shape) - len(subs.replace("...", ""))
            subs = subs.replace("...", ell[n_ell - k:] if k else "")
        if not subs.isalpha() and subs or len(subs) != len(shape):
            raise ValueError(f"einsum: subscripts {subs!r} do not fit an operand of shape {shape} "
                             f"in {equation!r} (one lowercase letter per dim, '...' for the rest)")
        written.append(subs)
    if arrow:
        out = out.replace("...", ell)
    else:
        letters = "".join(written)
        out = ell + "".join(sorted(c for c in set(letters) if letters.count(c) == 1 and c not in ell))
    sizes: dict[str, int] = {}
    for subs, shape in zip(written, shapes):
        for c, n in zip(subs, shape):
            if sizes.setdefault(c, n) != n:
                raise ValueError(f"einsum: subscript {c!r} has size {sizes[c]} in one operand and {n} "
                                 f"in another ({equation!r}, shapes {shapes})")
    missing = [c for c in out if c not in sizes]
    if missing or len(set(out)) != len(out):
        raise ValueError(f"einsum: output subscripts {out!r} must be distinct letters of the inputs ({equation!r})")
    return written, out


def einsum(equation: str, *operands: Any) -> Tensor:
    """Einstein summation, PyTorch's ``torch.einsum``: 'bhqd,bhkd->bhqk' (attention scores),
    'i,ij,j->' (a bilinear form), 'bi,bj->bij' (batched outer products), '...ij,...jk->...ik'.
    Operands may also come as one list. Gradient: an einsum of the output gradient with the
    other operands (see :class:`Einsum`)."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    inputs, output = _parse_einsum(equation, [tuple(o.shape) for o in operands])
    return Einsum.apply(inputs, output, *operands)


# ------------------------------------------------------------------ triangles and diagonals
class Triangle(Function):
    """tril / triu: keep one triangle of the last two dims, zero the rest; the gradient is
    masked the same way."""

    @staticmethod
    def forward(ctx: Context, x, diagonal, upper):
        xp = array_module(x)
        ctx.diagonal, ctx.upper = diagonal, upper
        return xp.triu(x, diagonal) if upper else xp.tril(x, diagonal)

    @staticmethod
    def backward(ctx: Context, grad):
        xp = array_module(grad)
        return (xp.triu(grad, ctx.diagonal) if ctx.upper else xp.tril(grad, ctx.diagonal)), None, None


def tril(input: Tensor, diagonal: int = 0) -> Tensor:
    """The lower triangle of the last two dims (..., n, m): entries with j - i <= diagonal."""
    if input.ndim < 2:
        raise ValueError(f"tril: input must have at least 2 dims, got shape {input.shape}")
    return Triangle.apply(input, int(diagonal), False)


def triu(input: Tensor, diagonal: int = 0) -> Tensor:
    """The upper triangle of the last two dims (..., n, m): entries with j - i >= diagonal."""
    if input.ndim < 2:
        raise ValueError(f"triu: input must have at least 2 dims, got shape {input.shape}")
    return Triangle.apply(input, int(diagonal), True)


def _diagonal_index(n: int, m: int, diagonal: int, xp) -> tuple:
    """(rows, cols) of diagonal ``diagonal`` of an n x m matrix (above the main one if > 0)."""
    length = max(0, min(n, m - diagonal) if diagonal >= 0 else min(n + diagonal, m))
    rows = xp.arange(length) + max(0, -diagonal)
    return rows, rows + diagonal


class Diag(Function):
    """A 1-D input becomes a square matrix with it on diagonal ``diagonal``; a 2-D input gives
    that diagonal as 1-D. Each direction's gradient is the other direction."""

    @staticmethod
    def forward(ctx: Context, x, diagonal):
        xp = array_module(x)
        ctx.shape, ctx.diagonal = x.shape, diagonal
        if x.ndim == 2:
            return x[_diagonal_index(*x.shape, diagonal, xp)]
        n = x.shape[0] + abs(diagonal)
        out = xp.zeros((n, n), dtype=x.dtype)
        out[_diagonal_index(n, n, diagonal, xp)] = x
        return out

    @staticmethod
    def backward(ctx: Context, grad):
        xp = array_module(grad)
        if len(ctx.shape) == 1:
            return grad[_diagonal_index(*grad.shape, ctx.diagonal, xp)], None
        g = xp.zeros(ctx.shape, dtype=grad.dtype)
        g[_diagonal_index(*ctx.shape, ctx.diagonal, xp)] = grad
        return g, None


def diag(input: Tensor, diagonal: int = 0) -> Tensor:
    """(n,) -> (n + |d|, n + |d|) with input on diagonal d; (n, m) -> that diagonal, 1-D."""
    if input.ndim not in (1, 2):
        raise ValueError(f"diag: input must be 1-D or 2-D, got shape {input.shape}")
    return Diag.apply(input, int(diagonal))


# ------------------------------------------------------------------ distances
def cdist(x1: Tensor, x2: Tensor, p: float = 2.0) -> Tensor:
    """Pairwise p-norm distances: x1 (..., P, M) and x2 (..., R, M) give (..., P, R),
    out[..., i, j] = ||x1[..., i, :] - x2[..., j, :]||_p.

    Written as the norm of the (..., P, R, M) differences, so the gradient is the norm's
    (0 where a distance is 0, as PyTorch). PyTorch computes p = 2 for more than 25 rows with
    a matmul (|a|^2 + |b|^2 - 2 a.b), which is faster but loses float32 digits for close
    points; this direct form is the exact one (memory P*R*M).
    """
    from tinyvision.functional.reduction import norm

    if x1.ndim < 2 or x2.ndim < 2 or x1.shape[-1] != x2.shape[-1]:
        raise ValueError(f"cdist: x1 {x1.shape} and x2 {x2.shape} must be (..., P, M) and (..., R, M) "
                         "with the same M")
    if p < 0:
        raise ValueError(f"cdist: p must be >= 0, got {p}")
    d = x1.unsqueeze(-2) - x2.unsqueeze(-3)
    return norm(d, p, dim=-1)
