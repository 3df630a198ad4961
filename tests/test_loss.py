"""Losses against PyTorch (float32 and float64) and finite differences.

Only the float inputs (logits, probability targets) are differentiated; class indices and
weights pass through unchanged on both sides.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
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


# --------------------------------------------------------------------------- added in #12
@pytest.mark.parametrize("log_target", [False, True])
@settings(max_examples=6)
@given(shape=st.sampled_from([(4,), (3, 5), (2, 3, 2)]),
       reduction=st.sampled_from(["none", "sum", "mean", "batchmean"]), seed=SEEDS)
def test_kl_div(log_target, shape, reduction, seed):
    """input: log-probabilities; target: probabilities (some exactly 0: 0 log 0 = 0) or log-probabilities.
    The target is differentiated only where it is positive (the log's derivative is infinite at 0)."""
    rng = np.random.default_rng(seed)
    logq = np.log(rng.dirichlet(np.ones(shape[-1]), shape[:-1]))
    p = rng.dirichlet(np.ones(shape[-1]), shape[:-1])
    target = np.log(p) if log_target else p
    kw = dict(reduction=reduction, log_target=log_target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # reduction='mean' warns on both sides
        check(lambda a, b: F.kl_div(a, b, **kw), lambda a, b: TF.kl_div(a, b, **kw), [logq, target])
        if not log_target:
            zeroed = np.where(rng.random(shape) < 0.3, 0.0, p)
            check_against_torch(lambda a, b: F.kl_div(a, b, **kw), lambda a, b: TF.kl_div(a, b, **kw),
                                [logq, zeroed], requires_grad=[True, False])


@settings(max_examples=8)
@given(shape=st.sampled_from([(4,), (2, 3), (2, 3, 2)]), reduction=REDUCTIONS, weighted=st.booleans(), seed=SEEDS)
def test_binary_cross_entropy(shape, reduction, weighted, seed):
    rng = np.random.default_rng(seed)
    prob, target = rng.uniform(0.05, 0.95, shape), rng.random(shape)
    extra = [rng.uniform(0.5, 2.0, shape[-1:])] if weighted else []
    ours, theirs = with_kwargs("binary_cross_entropy", ["weight"][:len(extra)], reduction=reduction)
    check(ours, theirs, [prob, target] + extra, [True, True] + [False] * len(extra))


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_cross_entropy_at_0_and_1_is_clamped_as_torch(dtype):
    prob = np.array([0.0, 1.0, 0.0, 1.0, 0.5], dtype=dtype)
    target = np.array([0.0, 1.0, 1.0, 0.0, 0.5], dtype=dtype)
    check_against_torch(lambda a, b: F.binary_cross_entropy(a, b, reduction="none"),
                        lambda a, b: TF.binary_cross_entropy(a, b, reduction="none"), [prob, target],
                        requires_grad=[True, True])


@pytest.mark.parametrize("name, kw", [("huber_loss", dict(delta=0.5)), ("huber_loss", dict(delta=2.0)),
                                      ("mse_loss", {}), ("l1_loss", {})])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_weighted_regression_losses(name, kw, reduction):
    """huber_loss, and the ``weight`` argument of torch 2.6+ on huber, mse and l1."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 4))
    y = x - (0.2 * rng.integers(-12, 12, (3, 4)) + 0.1)  # never on a kink
    w = rng.uniform(0.5, 2.0, (3, 4))  # torch takes only a weight of the input's shape here
    ours, theirs = with_kwargs(name, ["weight"], reduction=reduction, **kw)
    check(ours, theirs, [x, y, w], [True, True, False])
    ours, theirs = with_kwargs(name, [], reduction=reduction, **kw)
    check(ours, theirs, [x, y])


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("margin", [0.0, 0.3])
def test_cosine_embedding_loss(reduction, margin):
    rng = np.random.default_rng(4)
    x1, x2 = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    target = np.array([1, -1, 1, -1, -1])
    kw = dict(margin=margin, reduction=reduction)
    check(lambda a, b, t: F.cosine_embedding_loss(a, b, t, **kw),
          lambda a, b, t: TF.cosine_embedding_loss(a, b, t, **kw), [x1, x2, target], [True, True, False])


@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
@pytest.mark.parametrize("shape", [(4, 3), (3,)])
def test_triplet_margin_loss(swap, p, shape):
    rng = np.random.default_rng(5)
    a, pos, neg = (rng.standard_normal(shape) for _ in range(3))
    kw = dict(margin=1.5, p=p, swap=swap)
    check(lambda *t: F.triplet_margin_loss(*t, **kw), lambda *t: TF.triplet_margin_loss(*t, **kw), [a, pos, neg])


@settings(max_examples=10)
@given(shape=st.sampled_from([(), (0,), (5,), (3, 2), (2, 1, 3)]), extra=st.sampled_from([None, 0, 2]), seed=SEEDS)
def test_one_hot(shape, extra, seed):
    """Any index shape (0-d and empty too); num_classes -1 (max + 1) or given."""
    y = np.random.default_rng(seed).integers(0, 4, shape)
    # -1 infers max + 1, which an empty tensor cannot give (torch refuses too): then pass it
    num_classes = -1 if extra is None and y.size else 4 + (extra or 0)
    ours = F.one_hot(tv.tensor(y), num_classes)
    theirs = TF.one_hot(torch.tensor(y), num_classes)
    assert ours.dtype == np.int64 and tuple(ours.shape) == tuple(theirs.shape)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_bad_input_of_new_losses():
    x = tv.tensor(np.full((2, 3), 0.5))
    with pytest.raises(ValueError, match=r"one_hot: class values must be smaller than num_classes \(3\), got 5"):
        F.one_hot(tv.tensor([0, 5]), 3)
    with pytest.raises(ValueError, match="one_hot: class values must be non-negative, got -1"):
        F.one_hot(tv.tensor([0, -1]))
    with pytest.raises(ValueError, match=r"one_hot: cannot infer num_classes from an empty tensor"):
        F.one_hot(tv.tensor(np.zeros(0, dtype=np.int64)))
    with pytest.raises(TypeError, match="one_hot: tensor must hold integer class indices.*float64"):
        F.one_hot(x)
    with pytest.raises(ValueError, match=r"binary_cross_entropy: all elements of input should be between 0 and 1.*"
                                         r"\[-1, 0.5\]"):
        F.binary_cross_entropy(tv.tensor([[-1.0, 0.5]]), tv.tensor([[0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"kl_div: reduction must be one of .*'batchmean'\), got 'avg'"):
        F.kl_div(x, x, reduction="avg")
    with pytest.raises(ValueError, match="huber_loss: delta must be > 0, got 0"):
        F.huber_loss(x, x, delta=0)
    with pytest.raises(ValueError, match=r"cosine_embedding_loss: .*got \(2, 3\), \(2, 3\) and target \(3,\)"):
        F.cosine_embedding_loss(x, x, tv.tensor([1, 1, 1]))
    with pytest.raises(ValueError, match="triplet_margin_loss: margin must be greater than 0, got 0"):
        F.triplet_margin_loss(x, x, x, margin=0)
