"""Losses and dropout against PyTorch (float32 and float64) and finite differences.

Only the float inputs (logits, probability targets) are differentiated; class indices and
weights pass through unchanged on both sides.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyvision as tv
import tinyvision.nn.functional as F
from tests.helpers import DTYPES, check_against_torch
from tests.helpers import check_op as check

SEEDS = st.integers(0, 2**32 - 1)
REDUCTIONS = st.sampled_from(["none", "sum", "mean"])
# (N, C), (N, C, d1, d2) and (C,), with size-1 dims among them
LAYOUTS = st.sampled_from([(3, 4), (1, 2), (2, 3, 2, 2), (2, 3, 1, 3), (5,)])



def with_kwargs(name: str, names: list[str], **kw):
    """``name`` from ours and from torch, called as f(x, y, *arrays) where ``arrays`` are
    passed as the keyword arguments ``names`` (e.g. weight, pos_weight), plus ``kw``."""
    def make(module):
        return lambda x, y, *arrays: getattr(module, name)(x, y, **dict(zip(names, arrays)), **kw)
    return make(F), make(TF)


def class_targets(rng, shape: tuple, n_classes: int, ignore_index: int | None) -> np.ndarray:
    """Class indices of the target shape; some set to ignore_index, never all of them (that
    case has no finite-difference gradient: see test_every_target_ignored)."""
    target = rng.integers(0, n_classes, shape)
    if ignore_index is not None:
        target = np.where(rng.random(shape) < 0.3, ignore_index, target)
        if target.reshape(-1)[0] == ignore_index:
            target.reshape(-1)[0] = (ignore_index + 1) % n_classes
    return target


@settings(max_examples=30)
@given(layout=LAYOUTS, reduction=REDUCTIONS, weighted=st.booleans(),
       ignore_index=st.sampled_from([None, -100, 1]), label_smoothing=st.sampled_from([0.0, 0.1, 1.0]),
       seed=SEEDS)
def test_cross_entropy_class_indices(layout, reduction, weighted, ignore_index, label_smoothing, seed):
    rng = np.random.default_rng(seed)
    c = layout[0] if len(layout) == 1 else layout[1]
    target_shape = () if len(layout) == 1 else (layout[0],) + layout[2:]
    logits = 2 * rng.standard_normal(layout)
    target = class_targets(rng, target_shape, c, ignore_index)
    weights = [rng.uniform(0.5, 2.0, c)] if weighted else []
    kw = dict(reduction=reduction, label_smoothing=label_smoothing)
    if ignore_index is not None:
        kw["ignore_index"] = ignore_index
    ours, theirs = with_kwargs("cross_entropy", ["weight"], **kw)
    check(ours, theirs, [logits, target] + weights, [True, False] + [False] * len(weights))


@settings(max_examples=20)
@given(layout=LAYOUTS, reduction=REDUCTIONS, weighted=st.booleans(),
       label_smoothing=st.sampled_from([0.0, 0.2]), seed=SEEDS)
def test_cross_entropy_probabilities(layout, reduction, weighted, label_smoothing, seed):
    """Targets of the input's shape are class probabilities; both inputs get gradients."""
    rng = np.random.default_rng(seed)
    class_dim = 0 if len(layout) == 1 else 1
    logits = 2 * rng.standard_normal(layout)
    target = rng.random(layout)
    target /= target.sum(class_dim, keepdims=True)
    weights = [rng.uniform(0.5, 2.0, layout[class_dim])] if weighted else []
    ours, theirs = with_kwargs("cross_entropy", ["weight"], reduction=reduction, label_smoothing=label_smoothing)
    check(ours, theirs, [logits, target] + weights, [True, True] + [False] * len(weights))


@settings(max_examples=20)
@given(layout=LAYOUTS, reduction=REDUCTIONS, weighted=st.booleans(),
       ignore_index=st.sampled_from([None, -100, 0]), seed=SEEDS)
def test_nll_loss(layout, reduction, weighted, ignore_index, seed):
    rng = np.random.default_rng(seed)
    c = layout[0] if len(layout) == 1 else layout[1]
    target_shape = () if len(layout) == 1 else (layout[0],) + layout[2:]
    logp = rng.standard_normal(layout)  # any values: nll_loss does not need a distribution
    target = class_targets(rng, target_shape, c, ignore_index)
    weights = [rng.uniform(0.5, 2.0, c)] if weighted else []
    kw = dict(reduction=reduction)
    if ignore_index is not None:
        kw["ignore_index"] = ignore_index
    ours, theirs = with_kwargs("nll_loss", ["weight"], **kw)
    check(ours, theirs, [logp, target] + weights, [True, False] + [False] * len(weights))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_every_target_ignored(dtype, label_smoothing):
    """'mean' over no targets is 0/0 = nan, but the gradient is 0 (as torch), not nan."""
    logits = np.random.default_rng(0).standard_normal((3, 4)).astype(dtype)
    target = np.full(3, -100)
    check_against_torch(lambda x, y: F.cross_entropy(x, y, label_smoothing=label_smoothing),
                        lambda x, y: TF.cross_entropy(x, y, label_smoothing=label_smoothing),
                        [logits, target], requires_grad=[True, False])
    check_against_torch(F.nll_loss, TF.nll_loss, [logits, target], requires_grad=[True, False])


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_extreme_logits(dtype):
    """Logits of +-1000: a confident wrong class costs ~2000, not inf; the gradient stays finite."""
    logits = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 999.0]], dtype=dtype)
    target = np.array([1, 2])
    check_against_torch(F.cross_entropy, TF.cross_entropy, [logits, target], requires_grad=[True, False])


@settings(max_examples=20)
@given(shape=st.sampled_from([(4,), (2, 3), (2, 3, 2)]), reduction=REDUCTIONS, weighted=st.booleans(),
       pos_weighted=st.booleans(), seed=SEEDS)
def test_binary_cross_entropy_with_logits(shape, reduction, weighted, pos_weighted, seed):
    """weight broadcasts against the input; pos_weight runs along the last (class) dim."""
    rng = np.random.default_rng(seed)
    logits = 3 * rng.standard_normal(shape)
    logits.reshape(-1)[0] = 0.0  # sigmoid(0) = 1/2: where a relu/abs-based version went wrong
    target = rng.random(shape)
    names = [n for n, flag in (("weight", weighted), ("pos_weight", pos_weighted)) if flag]
    extra = [rng.uniform(0.5, 2.0, shape[-1:]) for _ in names]
    ours, theirs = with_kwargs("binary_cross_entropy_with_logits", names, reduction=reduction)
    check(ours, theirs, [logits, target] + extra, [True, True] + [False] * len(extra))


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_cross_entropy_with_logits_extreme(dtype):
    """|logits| up to 1000: no overflow in exp, no log(0); the loss of a confident miss is ~|x|."""
    logits = np.array([-1000.0, -50.0, -20.0, 0.0, 20.0, 50.0, 1000.0], dtype=dtype)
    target = np.array([1.0, 0.0, 1.0, 0.5, 0.0, 1.0, 0.0], dtype=dtype)
    pos_weight = np.array([2.0], dtype=dtype)
    for reduction in ("none", "mean"):
        ours, theirs = with_kwargs("binary_cross_entropy_with_logits", ["pos_weight"], reduction=reduction)
        check_against_torch(ours, theirs, [logits, target, pos_weight], requires_grad=[True, True, False])


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "smooth_l1_loss"])
@settings(max_examples=10)
@given(shape=st.sampled_from([(), (4,), (2, 3), (2, 0, 3), (1, 2, 1)]), reduction=REDUCTIONS,
       beta=st.sampled_from([0.0, 0.5, 1.0, 2.0]), seed=SEEDS)
def test_regression_losses(name, shape, reduction, beta, seed):
    """Differences on a grid of odd tenths: never 0 (the kink of |d|) nor +-beta (smooth_l1's switch)."""
    if reduction == "mean" and 0 in shape:
        return  # the mean of nothing is nan on both sides (not a useful gradient check)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    y = x - (0.2 * rng.integers(-12, 12, shape) + 0.1 + 0.05 * (rng.random(shape) - 0.5))
    kw = dict(reduction=reduction, **({"beta": beta} if name == "smooth_l1_loss" else {}))
    ours, theirs = getattr(F, name), getattr(TF, name)
    check(lambda a, b: ours(a, b, **kw), lambda a, b: theirs(a, b, **kw), [x, y], [True, True])


@pytest.mark.parametrize("dtype", DTYPES)
def test_regression_losses_at_kinks(dtype):
    """d = 0 (l1: gradient 0) and |d| = beta (smooth_l1: gradient +-1), as torch."""
    x = np.array([0.0, 1.0, -1.0, 0.5, 3.0], dtype=dtype)
    y = np.zeros(5, dtype=dtype)
    for ours, theirs in [(F.l1_loss, TF.l1_loss), (F.mse_loss, TF.mse_loss),
                         with_kwargs("smooth_l1_loss", [], beta=1.0), with_kwargs("smooth_l1_loss", [], beta=0.0)]:
        check_against_torch(ours, theirs, [x, y])


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_statistics(p):
    """Each element is zeroed with probability p; the rest are scaled by 1/(1-p) so the mean
    is kept. With n = 100,000 elements the standard error of the zero fraction is
    sqrt(p(1-p)/n) <= 0.0016 and that of the mean sqrt(p/((1-p)n)) <= 0.0064: we allow 5x."""
    tv.manual_seed(0)
    n = 100_000
    x = tv.ones(n, requires_grad=True)
    y = F.dropout(x, p)
    out = y.detach().numpy()
    zeros = (out == 0).mean()
    assert abs(zeros - p) < 5 * np.sqrt(p * (1 - p) / n)
    assert abs(out.mean() - 1.0) < 5 * np.sqrt(p / ((1 - p) * n))
    np.testing.assert_allclose(out[out != 0], 1 / (1 - p), rtol=1e-6)  # float32
    # gradient: mask / (1 - p), the same mask as the forward
    u = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    (y * tv.tensor(u)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), u * (out != 0) / (1 - p), rtol=1e-6)


def test_dropout_modes():
    """eval and p = 0 are the identity; p = 1 zeroes everything; the seed repeats the mask;
    float64 stays float64; the gradient matches finite differences for a fixed mask."""
    x = tv.randn(3, 4)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    assert not F.dropout(x, 1.0).numpy().any()
    tv.manual_seed(7)
    first = F.dropout(x, 0.5).numpy()
    tv.manual_seed(7)
    np.testing.assert_array_equal(F.dropout(x, 0.5).numpy(), first)
    x64 = tv.randn(3, 4, dtype=np.float64, requires_grad=True)
    assert F.dropout(x64, 0.3).dtype == np.float64

    def fixed_mask(t):
        tv.manual_seed(3)
        return F.dropout(t, 0.3)
    tv.gradcheck(fixed_mask, [x64])


def test_bad_input():
    x = tv.randn(3, 4)
    y = tv.tensor([0, 1, 2])
    with pytest.raises(TypeError, match="cross_entropy: target must hold integer class indices, got dtype float32"):
        F.cross_entropy(x, tv.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(IndexError, match=r"cross_entropy: target values must lie in \[0, 4\) or equal "
                                         r"ignore_index=-100; got \[4, 7\]"):
        F.cross_entropy(x, tv.tensor([4, 7, 0]))
    with pytest.raises(IndexError, match=r"got \[-1\]"):
        F.nll_loss(x, tv.tensor([-1, 0, 0]))
    with pytest.raises(ValueError, match=r"cross_entropy: target of shape \(2,\) does not fit input of shape \(3, 4\)"):
        F.cross_entropy(x, tv.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"cross_entropy: weight of shape \(3,\) must hold one weight per "
                                         r"class, shape \(4,\)"):
        F.cross_entropy(x, y, weight=tv.ones(3))
    with pytest.raises(ValueError, match="cross_entropy: input must have a class dim"):
        F.cross_entropy(tv.tensor(1.0), tv.tensor(0))
    with pytest.raises(ValueError, match=r"cross_entropy: label_smoothing must be in \[0, 1\], got 1.5"):
        F.cross_entropy(x, y, label_smoothing=1.5)
    bad = "reduction must be one of \\('mean', 'sum', 'none'\\), got 'avg'"
    for name, args in [("cross_entropy", (x, y)), ("nll_loss", (x, y)), ("mse_loss", (x, x)),
                       ("l1_loss", (x, x)), ("smooth_l1_loss", (x, x)), ("binary_cross_entropy_with_logits", (x, x))]:
        with pytest.raises(ValueError, match=f"{name}: {bad}"):
            getattr(F, name)(*args, reduction="avg")
    for name in ("mse_loss", "l1_loss", "smooth_l1_loss"):
        with pytest.raises(ValueError, match=rf"{name}: input shape \(3, 4\) and target shape \(4,\) differ"):
            getattr(F, name)(x, tv.ones(4))
    with pytest.raises(ValueError, match=r"binary_cross_entropy_with_logits: target shape \(4,\) must equal "
                                         r"input shape \(3, 4\)"):
        F.binary_cross_entropy_with_logits(x, tv.ones(4))
    with pytest.raises(TypeError, match="binary_cross_entropy_with_logits: target must be a float tensor.*int64"):
        F.binary_cross_entropy_with_logits(x, tv.ones((3, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="smooth_l1_loss: beta must be >= 0, got -1"):
        F.smooth_l1_loss(x, x, beta=-1)
    with pytest.raises(ValueError, match=r"dropout: p must be in \[0, 1\], got 1.5"):
        F.dropout(x, 1.5)
