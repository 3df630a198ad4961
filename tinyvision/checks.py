"""``tinyvision gradcheck``: finite-difference checks of every op and layer, as one table.

Each case is a function of float64 tensors; ``run_gradchecks`` perturbs each input element
(central differences, see tinyvision/autograd/gradcheck.py) and compares with backward().
Inputs avoid the points where an op has a kink (|x| > 0.1 for relu/abs, distinct values for
max) because there the two one-sided derivatives differ and no gradient is "right".
"""
from __future__ import annotations

import fnmatch
import time
from typing import Any, Callable

import numpy as np

import tinyvision as tv
import tinyvision.nn.functional as F

Case = tuple[str, Callable[..., Any], list[tuple[int, ...]]]


def _away_from_zero(a: np.ndarray) -> np.ndarray:
    return np.where(np.abs(a) < 0.1, a + 0.2 * np.sign(a + 1e-12), a)


def _in_place_chain(a: tv.Tensor, b: tv.Tensor) -> tv.Tensor:
    """In-place ops on a non-leaf are recorded: y's gradient runs through each step."""
    y = a * 1
    y.mul_(b).add_(b, alpha=2).clamp_(-1.5, 1.5)
    y[0] = b[1] * 3
    return y


def _cases() -> list[Case]:
    """(name, fn, input shapes): every input of ``fn`` is checked, so the layer cases pass
    their weights and biases as inputs (the functional form) to check those gradients too."""
    from tinyvision import nn

    tv.manual_seed(0)
    mha = nn.MultiheadAttention(4, 2, batch_first=True).double()  # its x-gradient runs through every projection
    idx = tv.tensor(np.array([2, 0, 1]))
    mask = tv.tensor(np.array([[True, False, False, True]] * 3))
    class_w = tv.tensor(np.array([0.5, 1.0, 2.0, 1.5]))
    return [
        ("add (broadcast), sub, neg", lambda a, b: a + b - (-b * 2), [(3, 4), (4,)]),
        ("mul", lambda a, b: a * b, [(3, 4), (3, 1)]),
        ("div", lambda a, b: a / (b.abs() + 1), [(3, 4), (3, 4)]),
        ("pow", lambda a: (a.abs() + 0.5) ** 2.5, [(3, 4)]),
        ("exp, log, sqrt", lambda a: (a.exp() + 1).log().sqrt(), [(3, 4)]),
        ("log1p, rsqrt, sin, cos", lambda a: F.log1p(a.abs()) + F.rsqrt(a.abs() + 0.5) + F.sin(a) * F.cos(a), [(3, 4)]),
        ("tanh, sigmoid, relu", lambda a: a.tanh() + a.sigmoid() + a.relu(), [(3, 4)]),
        ("gelu, silu, softplus", lambda a: F.gelu(a) + F.silu(a) + F.softplus(a), [(3, 4)]),
        ("leaky_relu, clamp", lambda a: F.leaky_relu(a, 0.2) + F.clamp(a, -0.5, 0.5), [(3, 4)]),
        ("maximum, where, masked_fill", lambda a, b: F.masked_fill(F.where(a > 0, F.maximum(a, b), b), mask, 0.0), [(3, 4), (3, 4)]),
        ("sum, mean, var (dim)", lambda a: a.sum(0) + a.mean(1, keepdim=True) + a.var(0), [(3, 4)]),
        ("amax, logsumexp, prod", lambda a: a.amax(1) + a.logsumexp(1) + a.prod(1), [(3, 4)]),
        ("norm", lambda a: a.norm(dim=1), [(3, 4)]),
        ("softmax, log_softmax", lambda a: a.softmax(-1) * a.log_softmax(-1), [(3, 4)]),
        ("matmul (batched)", lambda a, b: a @ b, [(2, 3, 4), (4, 5)]),
        ("reshape, permute, flip", lambda a: a.reshape(4, 3).permute(1, 0).flip(0), [(3, 4)]),
        ("cat, stack, split", lambda a, b: tv.cat([a, b]).split(2)[1] + tv.stack([a, b]).sum(0)[:2], [(2, 4), (2, 4)]),
        ("pad reflect, roll, repeat", lambda a: F.pad(a, (2, 1), mode="reflect").roll(1, 1).repeat(2, 1), [(3, 4)]),
        ("getitem (advanced, repeats)", lambda a: a[[0, 0, 2], 1:], [(3, 4)]),
        ("gather, index_select", lambda a: a.gather(1, tv.tensor(np.array([[1], [0], [3]]))) + a.index_select(0, idx)[:, :1], [(3, 4)]),
        ("sort, topk, median", lambda a: a.sort(1).values + a.topk(4, 1).values + a.median(1, keepdim=True).values, [(3, 4)]),
        ("cumsum, cumprod, diff", lambda a: a.cumsum(1) + a.cumprod(1) + tv.diff(a, prepend=a[:, :1]), [(3, 4)]),
        ("einsum, bmm, addmm, outer", lambda a, b: tv.einsum("bik,bjk->bij", a, b).sum(0) + a[0].mm(b[0].t()) + tv.addmm(a[1, :, 0], a[1], b[1].t(), beta=0.5) + tv.outer(a[0, :, 0], b[0, :, 0]), [(2, 3, 4), (2, 3, 4)]),
        ("tril, diag, cdist, kron", lambda a, b: a.tril(1) + tv.diag(tv.diag(a)) + tv.cdist(a, b) + tv.kron(a[:1, :2], b[:3, :2].sum(0, keepdim=True))[:, :3], [(3, 3), (3, 3)]),
        ("scatter, scatter_add, index_add, masked_scatter", lambda a, b: a.scatter(1, idx.reshape(3, 1), b) + a.scatter_add(0, idx.reshape(1, 3).repeat(2, 1), b) + a.index_add(0, idx, b) + a.masked_scatter(mask[:, :3], b), [(3, 3), (3, 3)]),
        ("square, erf, atan2, lerp", lambda a, b: a.square() + a.erf() + tv.atan2(a, b) + a.lerp(b, b.sigmoid()), [(3, 4), (3, 4)]),
        ("in place on a non-leaf (mul_, add_, setitem)", lambda a, b: _in_place_chain(a, b), [(3, 4), (3, 4)]),
        ("cross_entropy (smoothing)", lambda a: F.cross_entropy(a, tv.tensor(np.array([0, 2, 1])), label_smoothing=0.1), [(3, 4)]),
        # class weights are constants (torch has no gradient for them either)
        ("cross_entropy (weight, soft targets)", lambda a, t: F.cross_entropy(a, t.softmax(-1), weight=class_w) + F.cross_entropy(a, tv.tensor(np.array([3, 1, 0])), weight=class_w), [(3, 4), (3, 4)]),
        ("bce_with_logits", lambda a, b: F.binary_cross_entropy_with_logits(a, b.sigmoid()), [(3, 4), (3, 4)]),
        ("smooth_l1, mse", lambda a, b: F.smooth_l1_loss(a, b) + F.mse_loss(a, b), [(3, 4), (3, 4)]),
        ("linear (x, weight, bias)", lambda x, w, b: F.linear(x, w, b), [(2, 4), (3, 4), (3,)]),
        ("conv2d (x, weight, bias)", lambda x, w, b: F.conv2d(x, w, b, padding=1), [(2, 2, 5, 5), (3, 2, 3, 3), (3,)]),
        ("conv2d (stride, dilation, groups)", lambda x, w: F.conv2d(x, w, stride=2, padding=2, dilation=2, groups=2), [(2, 4, 7, 6), (4, 2, 3, 3)]),
        ("conv_transpose2d", lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1), [(1, 2, 4, 3), (2, 3, 3, 3)]),
        ("unfold, fold", lambda x: F.fold(F.unfold(x, 2, stride=1), (4, 5), 2, stride=1), [(1, 2, 4, 5)]),
        ("max_pool2d 3x3 s2 p1", lambda x: F.max_pool2d(x, 3, 2, 1), [(1, 2, 7, 7)]),
        ("avg_pool2d ceil_mode", lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False), [(1, 2, 6, 7)]),
        ("adaptive_avg_pool2d", lambda x: F.adaptive_avg_pool2d(x, (3, 2)), [(1, 2, 7, 5)]),
        ("scaled_dot_product_attention (causal)", lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), [(2, 5, 4), (2, 5, 4), (2, 5, 3)]),
        ("batch_norm (train; x, weight, bias)", lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), [(3, 2, 3, 3), (2,), (2,)]),
        ("layer_norm (x, weight, bias)", lambda x, w, b: F.layer_norm(x, (4,), w, b), [(3, 4), (4,), (4,)]),
        ("group_norm (x, weight, bias)", lambda x, w, b: F.group_norm(x, 2, w, b), [(2, 4, 3, 3), (4,), (4,)]),
        ("interpolate bilinear", lambda x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False), [(1, 2, 3, 4)]),
        ("MultiheadAttention layer", lambda x: mha(x, x, x)[0], [(2, 3, 4)]),
    ]


def matches(name: str, pattern: str) -> bool:
    """``pattern`` is a part of ``name`` ('conv'), or a shell pattern when it has * ? or [ ('conv*')."""
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(name, pattern)
    return pattern in name


def run_gradchecks(pattern: str = "*", verbose: bool = True, cases: list[Case] | None = None) -> list[str]:
    """Run the checks (``cases``, default: all of the above) whose name matches ``pattern``
    (see ``matches``); print a table; return the names of those that failed (or raised).
    A pattern that matches no check is a ValueError: a run of 0 checks proves nothing."""
    rng = np.random.default_rng(0)
    failures = []
    rows = []
    cases = _cases() if cases is None else cases
    if not any(matches(name, pattern) for name, _, _ in cases):
        raise ValueError(f"no gradient check matches {pattern!r}; the checks are: "
                         + ", ".join(name for name, _, _ in cases))
    for name, fn, shapes in cases:
        if not matches(name, pattern):
            continue
        inputs = [tv.tensor(_away_from_zero(rng.standard_normal(s)), requires_grad=True) for s in shapes]
        start = time.perf_counter()
        try:
            tv.gradcheck(fn, inputs, mode="full" if sum(np.prod(s) for s in shapes) <= 300 else "random")
            status = "ok"
        except AssertionError as exc:  # GradcheckError: the gradients disagree
            status = f"FAILED: {exc}"
            failures.append(name)
        except Exception as exc:  # the op itself raised: also a failed check, and the table goes on
            status = f"ERROR: {type(exc).__name__}: {exc}"
            failures.append(name)
        rows.append((name, " ".join(str(s) for s in shapes), status, time.perf_counter() - start))
    if verbose:
        width = max(len(r[0]) for r in rows) if rows else 10
        print(f"{'check':<{width}}  {'input shapes':<32} {'seconds':>8}  result")
        for name, shapes, status, seconds in rows:
            print(f"{name:<{width}}  {shapes:<32} {seconds:>8.3f}  {status}")
        print(f"{len(rows) - len(failures)} passed, {len(failures)} failed")
    return failures
