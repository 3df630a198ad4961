"""Elementwise ops against PyTorch (float32 and float64) and against finite differences.

Inputs are drawn away from the points where an op has no derivative (a kink, a tie), since
finite differences are meaningless there; PyTorch's conventions at those points are then
checked separately, on exact values, in ``test_conventions_at_non_differentiable_points``.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinyvision as tv
from tests.helpers import DTYPES, check_against_torch
from tests.helpers import check_op as check

# Up to 3 dims of up to 4: small enough for a full finite-difference Jacobian, and
# size-0 and size-1 axes come up often.
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
PAIRS = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=0, max_side=3)
SEEDS = st.integers(0, 2**32 - 1)



def away_from(x: np.ndarray, points: tuple[float, ...], gap: float = 0.1) -> np.ndarray:
    """Move each value at least ``gap`` from every point in ``points`` (kinks, bounds)."""
    for p in points:
        near = np.abs(x - p) < gap
        x = np.where(near, p + np.where(x >= p, gap, -gap), x)
    return x


# name -> (ours, torch, map from standard normal samples to the op's smooth domain)
UNARY = {
    "neg": (tv.neg, torch.neg, None),
    "abs": (tv.abs, torch.abs, lambda x: away_from(x, (0,))),
    "exp": (tv.exp, torch.exp, None),
    "log": (tv.log, torch.log, lambda x: np.abs(x) + 0.5),
    "log1p": (tv.log1p, torch.log1p, lambda x: np.abs(x) - 0.5),
    "sqrt": (tv.sqrt, torch.sqrt, lambda x: np.abs(x) + 0.5),
    "rsqrt": (tv.rsqrt, torch.rsqrt, lambda x: np.abs(x) + 0.5),
    "sin": (tv.sin, torch.sin, lambda x: 3 * x),
    "cos": (tv.cos, torch.cos, lambda x: 3 * x),
    "tanh": (tv.tanh, torch.tanh, None),
    "sigmoid": (tv.sigmoid, torch.sigmoid, lambda x: 4 * x),
    "relu": (tv.relu, torch.relu, lambda x: away_from(x, (0,))),
    "leaky_relu": (lambda x: tv.leaky_relu(x, 0.1), lambda x: TF.leaky_relu(x, 0.1),
                   lambda x: away_from(x, (0,))),
    "gelu": (tv.gelu, TF.gelu, lambda x: 2 * x),
    "gelu_tanh": (lambda x: tv.gelu(x, approximate="tanh"), lambda x: TF.gelu(x, approximate="tanh"),
                  lambda x: 2 * x),
    "silu": (tv.silu, TF.silu, lambda x: 2 * x),
    "softplus": (tv.softplus, TF.softplus, lambda x: 3 * x),
    # beta x > threshold takes the linear branch: both branches, away from the switch
    "softplus_beta": (lambda x: tv.softplus(x, beta=2.0, threshold=1.0),
                      lambda x: TF.softplus(x, beta=2.0, threshold=1.0), lambda x: away_from(x, (0.5,))),
    "clamp": (lambda x: tv.clamp(x, -0.5, 0.5), lambda x: torch.clamp(x, -0.5, 0.5),
              lambda x: away_from(x, (-0.5, 0.5))),
    "clamp_min": (lambda x: tv.clamp(x, min=0.2), lambda x: torch.clamp(x, min=0.2),
                  lambda x: away_from(x, (0.2,))),
    "clip_max": (lambda x: tv.clip(x, max=0.2), lambda x: torch.clip(x, max=0.2),
                 lambda x: away_from(x, (0.2,))),
    "square": (tv.square, torch.square, None),
    "erf": (tv.erf, torch.erf, lambda x: 2 * x),
    # piecewise constant: the gradient is 0; inputs kept off the jumps
    "floor": (tv.floor, torch.floor, lambda x: np.floor(3 * x) + 0.3),
    "ceil": (lambda x: x.ceil(), lambda x: x.ceil(), lambda x: np.floor(3 * x) + 0.3),
    "round": (tv.round, torch.round, lambda x: np.floor(3 * x) + 0.3),
    "round_decimals": (lambda x: tv.round(x, decimals=2), lambda x: torch.round(x, decimals=2),
                       lambda x: np.floor(300 * x) / 100 + 0.003),
    "round_negative_decimals": (lambda x: x.round(decimals=-1), lambda x: x.round(decimals=-1),
                                lambda x: np.floor(3 * x) * 10 + 3),
    "sign": (tv.sign, torch.sign, lambda x: away_from(x, (0,))),
}


@pytest.mark.parametrize("name", UNARY)
@settings(max_examples=8)
@given(shape=SHAPES, seed=SEEDS)
def test_unary(name, shape, seed):
    ours, theirs, domain = UNARY[name]
    x = np.random.default_rng(seed).standard_normal(shape)
    check(ours, theirs, [domain(x) if domain else x])


def _positive(x):
    return np.abs(x) + 0.5


def _nonzero(x):
    return away_from(x, (0,), 0.3)


# name -> (ours, torch, domain of a, domain of b)
BINARY = {
    "add": (tv.add, torch.add, None, None),
    "sub": (tv.sub, torch.sub, None, None),
    "mul": (tv.mul, torch.mul, None, None),
    "div": (tv.div, torch.div, None, _nonzero),
    "pow": (tv.pow, torch.pow, _positive, None),
    "maximum": (tv.maximum, torch.maximum, None, None),
    "minimum": (tv.minimum, torch.minimum, None, None),
    "atan2": (tv.atan2, torch.atan2, None, _nonzero),
    "add_alpha": (lambda a, b: tv.add(a, b, alpha=-1.5), lambda a, b: torch.add(a, b, alpha=-1.5), None, None),
    "sub_alpha": (lambda a, b: a.sub(b, alpha=2), lambda a, b: a.sub(b, alpha=2), None, None),
    "lerp_scalar_weight": (lambda a, b: tv.lerp(a, b, 0.3), lambda a, b: torch.lerp(a, b, 0.3), None, None),
}


@pytest.mark.parametrize("name", BINARY)
@settings(max_examples=12)
@given(shapes=PAIRS, seed=SEEDS)
def test_binary_broadcast(name, shapes, seed):
    ours, theirs, dom_a, dom_b = BINARY[name]
    rng = np.random.default_rng(seed)
    a, b = (rng.standard_normal(s) for s in shapes.input_shapes)
    a, b = dom_a(a) if dom_a else a, dom_b(b) if dom_b else b
    if name in ("maximum", "minimum"):  # even vs odd tenths: never a tie (ties are tested below)
        a, b = (0.2 * rng.integers(-5, 5, s) + 0.1 * i for i, s in enumerate(shapes.input_shapes))
    check(ours, theirs, [a, b])


@settings(max_examples=8)
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, min_side=0, max_side=3),
       seed=SEEDS)
def test_lerp_with_tensor_weight(shapes, seed):
    rng = np.random.default_rng(seed)
    a, b, w = (rng.standard_normal(s) for s in shapes.input_shapes)
    check(tv.lerp, torch.lerp, [a, b, w])
    check(lambda a, b, w: a.lerp(b, w), lambda a, b, w: a.lerp(b, w), [a, b, w])


VALUES = np.array([[0.0, -1.5, np.nan, np.inf], [-np.inf, 1.0, 1.0 + 1e-7, 2.0]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_float_predicates_and_closeness(dtype):
    x = VALUES.astype(dtype)
    ours, theirs = tv.tensor(x), torch.tensor(x)
    for name in ("isnan", "isinf", "isfinite"):
        np.testing.assert_array_equal(getattr(tv, name)(ours).numpy(), getattr(torch, name)(theirs).numpy())
        np.testing.assert_array_equal(getattr(ours, name)().numpy(), getattr(theirs, name)().numpy())
    other = np.ones_like(x)
    for kw in ({}, dict(rtol=0, atol=1e-6), dict(equal_nan=True)):
        np.testing.assert_array_equal(tv.isclose(ours, tv.tensor(other), **kw).numpy(),
                                      torch.isclose(theirs, torch.tensor(other), **kw).numpy())
        assert ours.allclose(ours, **kw) == theirs.allclose(theirs, **kw)
    assert tv.allclose(tv.ones(3), tv.ones(3) + 1e-9) and not tv.allclose(tv.ones(3), tv.zeros(3))


def test_comparison_methods_match_operators_and_pytorch():
    a, b = np.array([[1.0, 2.0, 3.0]]), np.array([[2.0], [1.0]])
    for name in ("eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or"):
        ours = getattr(tv.tensor(a), name)(tv.tensor(b))
        theirs = getattr(torch.tensor(a), name)(torch.tensor(b))
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    np.testing.assert_array_equal(tv.tensor(a).logical_not().numpy(), torch.tensor(a).logical_not().numpy())


def test_integer_floor_ceil_round_keep_the_values():
    x = [[-3, 0, 7]]
    for name in ("floor", "ceil", "round", "sign"):
        ours, theirs = getattr(tv, name)(tv.tensor(x)), getattr(torch, name)(torch.tensor(x))
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_alpha_must_be_a_number_and_integral_for_integers():
    with pytest.raises(TypeError, match="add: alpha must be a number"):
        tv.add(tv.ones(2), tv.ones(2), alpha="2")
    for lib in (tv, torch):
        with pytest.raises(RuntimeError, match="argument alpha must not be a floating point number"):
            lib.add(lib.tensor([1, 2]), lib.tensor([1, 2]), alpha=0.5)


@settings(max_examples=15)
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, min_side=0, max_side=3),
       seed=SEEDS)
def test_where_broadcast(shapes, seed):
    rng = np.random.default_rng(seed)
    cond_shape, a_shape, b_shape = shapes.input_shapes
    cond = rng.random(cond_shape) < 0.5
    a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
    check(tv.where, torch.where, [cond, a, b])


def test_where_with_scalars():
    cond = np.array([True, False, True])
    x = np.array([1.0, -2.0, 3.0])
    check(lambda c, x: tv.where(c, x, 0.5), lambda c, x: torch.where(c, x, 0.5), [cond, x])
    check(lambda c, x: tv.where(c, -1.0, x), lambda c, x: torch.where(c, -1.0, x), [cond, x])


@settings(max_examples=10)
@given(shapes=PAIRS, seed=SEEDS)
def test_clamp_with_tensor_bounds(shapes, seed):
    rng = np.random.default_rng(seed)
    # x on even tenths, bounds on odd tenths: never a tie with a bound (ties are tested below)
    x = 0.2 * rng.integers(-8, 8, shapes.input_shapes[0])
    lo = 0.2 * rng.integers(-5, 3, shapes.input_shapes[1]) + 0.1
    hi = lo + 1.0
    check(tv.clamp, torch.clamp, [x, lo, hi])
    check(lambda x, lo: tv.clamp(x, min=lo), lambda x, lo: torch.clamp(x, min=lo), [x, lo])
    check(lambda x, hi: tv.clamp(x, max=hi), lambda x, hi: torch.clamp(x, max=hi), [x, hi])


@pytest.mark.parametrize("dtype", DTYPES)
def test_conventions_at_non_differentiable_points(dtype):
    """Where the derivative does not exist, PyTorch still picks a value; so do we."""
    def same(ours, theirs, *arrays):
        check_against_torch(ours, theirs, [np.asarray(a, dtype=dtype) for a in arrays])

    x = [-1.0, 0.0, 0.0, 2.0]
    same(tv.relu, torch.relu, x)                                 # relu'(0) = 0
    same(tv.abs, torch.abs, x)                                   # abs'(0) = 0
    same(lambda t: tv.leaky_relu(t, 0.2), lambda t: TF.leaky_relu(t, 0.2), x)  # slope at 0
    same(lambda t: tv.clamp(t, 0.0, 2.0), lambda t: torch.clamp(t, 0.0, 2.0), x)  # bounds: 1
    same(lambda t: tv.clamp(t, min=0.0), lambda t: torch.clamp(t, min=0.0), x)
    same(tv.maximum, torch.maximum, x, [0.0, 0.0, 1.0, 2.0])     # a tie splits it in half
    same(tv.minimum, torch.minimum, x, [0.0, 0.0, 1.0, 2.0])
    # tensor bounds: ties with each bound, and min > max (then the output is max)
    same(tv.clamp, torch.clamp, [0.0, 1.0, 2.0, 3.0, 5.0], [1.0, 1.0, 1.0, 4.0, 4.0], [2.0, 2.0, 2.0, 1.0, 1.0])
    # pow at a = 0: d/da is 0 where b = 0; d/db is 0 where a = 0
    same(tv.pow, torch.pow, [0.0, 0.0, 2.0, 0.0], [0.0, 2.0, 0.0, 1.0])
    same(lambda t: t ** 2, lambda t: t ** 2, x)
    same(tv.sqrt, torch.sqrt, [0.0, 1.0])                         # sqrt'(0) = inf in both


@pytest.mark.parametrize("dtype", DTYPES)
def test_extreme_values(dtype):
    """No overflow to NaN: relu(-inf) = 0, sigmoid and softplus at +-1000, gelu far out."""
    x = np.array([-np.inf, -1000.0, -30.0, 30.0, 1000.0, np.inf], dtype=dtype)
    for ours, theirs in [(tv.relu, torch.relu), (tv.sigmoid, torch.sigmoid), (tv.tanh, torch.tanh)]:
        check_against_torch(ours, theirs, [x])
    finite = x[1:-1]
    for ours, theirs in [(tv.softplus, TF.softplus), (tv.silu, TF.silu), (tv.gelu, TF.gelu),
                         (lambda t: tv.gelu(t, approximate="tanh"), lambda t: TF.gelu(t, approximate="tanh"))]:
        check_against_torch(ours, theirs, [finite])


@pytest.mark.parametrize("dtype", DTYPES)
def test_operator_and_method_forms(dtype):
    """x.exp(), 2 - x, np_array * x, x ** 2, abs(x)... reach the same ops and keep the dtype."""
    rng = np.random.default_rng(0)
    a = (rng.random((2, 3)) + 0.5).astype(dtype)
    arr = rng.standard_normal((2, 3)).astype(dtype)
    cases = [
        (lambda x: x + 2, lambda x: x + 2), (lambda x: 2 + x, lambda x: 2 + x),
        (lambda x: x - 0.5, lambda x: x - 0.5), (lambda x: 2 - x, lambda x: 2 - x),
        (lambda x: x * 3, lambda x: x * 3), (lambda x: 1.5 * x, lambda x: 1.5 * x),
        (lambda x: x / 3, lambda x: x / 3), (lambda x: 2 / x, lambda x: 2 / x),
        (lambda x: x ** 2, lambda x: x ** 2), (lambda x: 2 ** x, lambda x: 2 ** x),
        (lambda x: x ** 0.5, lambda x: x ** 0.5),
        (lambda x: -x, lambda x: -x), (lambda x: abs(x - 1), lambda x: abs(x - 1)),
        (lambda x: arr * x, lambda x: torch.tensor(arr) * x),
        (lambda x: arr - x, lambda x: torch.tensor(arr) - x),
        (lambda x: x / arr, lambda x: x / torch.tensor(arr)),
        (lambda x: x.exp(), lambda x: x.exp()), (lambda x: x.log(), lambda x: x.log()),
        (lambda x: x.log1p(), lambda x: x.log1p()), (lambda x: x.sqrt(), lambda x: x.sqrt()),
        (lambda x: x.rsqrt(), lambda x: x.rsqrt()), (lambda x: x.sin(), lambda x: x.sin()),
        (lambda x: x.cos(), lambda x: x.cos()), (lambda x: x.tanh(), lambda x: x.tanh()),
        (lambda x: x.sigmoid(), lambda x: x.sigmoid()), (lambda x: (x - 1).relu(), lambda x: (x - 1).relu()),
        (lambda x: x.neg(), lambda x: x.neg()), (lambda x: x.abs(), lambda x: x.abs()),
        (lambda x: x.clamp(0.7, 1.2), lambda x: x.clamp(0.7, 1.2)),
        (lambda x: x.clip(max=1.0), lambda x: x.clip(max=1.0)),
        (lambda x: x.pow(3), lambda x: x.pow(3)),
        (lambda x: x.add(1).sub(2).mul(3).div(4), lambda x: x.add(1).sub(2).mul(3).div(4)),
        (lambda x: x.maximum(tv.tensor(arr)), lambda x: x.maximum(torch.tensor(arr))),
        (lambda x: x.minimum(tv.tensor(arr)), lambda x: x.minimum(torch.tensor(arr))),
    ]
    for ours, theirs in cases:
        check_against_torch(ours, theirs, [a])
        assert ours(tv.tensor(a)).dtype == dtype  # a Python number does not promote float32


@settings(max_examples=15)
@given(shapes=PAIRS, seed=SEEDS)
def test_comparisons(shapes, seed):
    """Comparisons give bool tensors with no gradient; ties must come out equal."""
    rng = np.random.default_rng(seed)
    a, b = (rng.integers(-1, 2, s).astype(np.float32) for s in shapes.input_shapes)  # many ties
    x, y = tv.tensor(a, requires_grad=True), tv.tensor(b)
    tx, ty = torch.tensor(a), torch.tensor(b)
    pairs = [(x == y, tx == ty), (x != y, tx != ty), (x < y, tx < ty), (x <= y, tx <= ty),
             (x > y, tx > ty), (x >= y, tx >= ty), (tv.eq(x, y), torch.eq(tx, ty)),
             (tv.ne(x, y), torch.ne(tx, ty)), (tv.lt(x, y), torch.lt(tx, ty)),
             (tv.le(x, y), torch.le(tx, ty)), (tv.gt(x, y), torch.gt(tx, ty)),
             (tv.ge(x, y), torch.ge(tx, ty)), (x > 0, tx > 0), (0.5 < x, 0.5 < tx),
             ((x > 0) & (y > 0), (tx > 0) & (ty > 0)), ((x > 0) | (y > 0), (tx > 0) | (ty > 0)),
             (~(x > 0), ~(tx > 0))]
    for ours, theirs in pairs:
        assert ours.dtype == np.bool_ and not ours.requires_grad and ours.grad_fn is None
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_gradient_accumulates_through_broadcast_and_reuse():
    """x used twice, once broadcast: both gradients add up, as in torch."""
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((3, 1)), rng.standard_normal((1, 4))
    check(lambda x, y: x * y + tv.exp(x) * x, lambda x, y: x * y + torch.exp(x) * x, [a, b])


def test_bad_input():
    x, y = tv.ones((2, 3)), tv.ones((4,))
    for op in ("add", "sub", "mul", "div", "pow", "maximum", "minimum"):
        with pytest.raises(ValueError, match=rf"{op}: shapes \(2, 3\) and \(4,\) cannot be broadcast"):
            getattr(tv, op)(x, y)
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(4,\)"):
        x + y
    with pytest.raises(ValueError, match=r"lt: shapes \(2, 3\) and \(4,\)"):
        x < y
    with pytest.raises(ValueError, match=r"where \(input and other\): shapes \(2, 3\) and \(4,\)"):
        tv.where(tv.ones((1,)) > 0, x, y)
    with pytest.raises(TypeError, match="where expected condition to be a boolean tensor, but got a tensor with dtype float32"):
        tv.where(x, x, x)
    with pytest.raises(ValueError, match=r"clamp \(input and min\): shapes \(2, 3\) and \(4,\)"):
        tv.clamp(x, min=y)
    with pytest.raises(ValueError, match="clamp: at least one of min and max"):
        tv.clamp(x)
    with pytest.raises(ValueError, match="gelu: approximate must be 'none' or 'tanh', got 'erf'"):
        tv.gelu(x, approximate="erf")

