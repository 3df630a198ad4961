"""The activations of functional/activation.py new in #12, against torch (float32, float64,
forward and backward) and finite differences; torch's derivative at each kink; bad input.
(relu, leaky_relu, gelu, silu and softplus keep their older tests in test_elementwise.py.)"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinyvision as tv
from tests.helpers import DTYPES, check_against_torch, check_op
from tests.test_elementwise import away_from

F = tv.nn.functional
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)


# name -> (ours, torch, map from N(0, 1) samples into the op's smooth domain, kinks to probe exactly)
UNARY = {
    "elu": (F.elu, TF.elu, lambda x: away_from(3 * x, (0,)), (0.0,)),
    "elu_alpha": (lambda x: F.elu(x, 0.5), lambda x: TF.elu(x, 0.5), lambda x: away_from(3 * x, (0,)), (0.0,)),
    "selu": (F.selu, TF.selu, lambda x: away_from(3 * x, (0,)), (0.0,)),
    "relu6": (F.relu6, TF.relu6, lambda x: away_from(4 * x + 3, (0, 6)), (0.0, 6.0)),
    "hardtanh": (lambda x: F.hardtanh(x, -0.5, 2.0), lambda x: TF.hardtanh(x, -0.5, 2.0),
                 lambda x: away_from(2 * x, (-0.5, 2.0)), (-0.5, 2.0)),
    "hardsigmoid": (F.hardsigmoid, TF.hardsigmoid, lambda x: away_from(4 * x, (-3, 3)), (-3.0, 3.0)),
    "hardswish": (F.hardswish, TF.hardswish, lambda x: away_from(4 * x, (-3, 3)), (-3.0, 3.0)),
    "mish": (F.mish, TF.mish, lambda x: 3 * x, ()),
    "logsigmoid": (F.logsigmoid, TF.logsigmoid, lambda x: 4 * x, ()),
    "softsign": (F.softsign, TF.softsign, lambda x: away_from(3 * x, (0,)), (0.0,)),
}


# torch's hardsigmoid backward multiplies by the float32 constant 1.0f / 6.0f, also in float64
# (relative error 3e-8): our exact 1/6 agrees to that, not to 1e-10
FLOAT64_SCALE = {"hardsigmoid": 1e3}


@pytest.mark.parametrize("name", sorted(UNARY))
@settings(max_examples=6)
@given(shape=SHAPES, seed=st.integers(0, 2**32 - 1))
def test_unary_against_torch_and_gradcheck(name, shape, seed):
    ours, theirs, domain, _ = UNARY[name]
    x = domain(np.random.default_rng(seed).standard_normal(shape))
    check_against_torch(ours, theirs, [x.astype(np.float32)])
    check_against_torch(ours, theirs, [x], scale=FLOAT64_SCALE.get(name, 1.0))
    assert tv.gradcheck(ours, [tv.tensor(x, requires_grad=True)])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(UNARY))
def test_kinks_and_extremes_match_torch(name, dtype):
    """At each kink the derivative is a convention: torch's, exactly; far out, no overflow."""
    ours, theirs, _, kinks = UNARY[name]
    x = np.array(list(kinks) + [-1000.0, -30.0, 30.0, 1000.0], dtype=dtype)
    check_against_torch(ours, theirs, [x], scale=FLOAT64_SCALE.get(name, 1.0) if dtype == np.float64 else 1.0)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_glu(dim):
    x = np.random.default_rng(1).standard_normal((4, 6, 2))
    check_op(lambda t: F.glu(t, dim), lambda t: TF.glu(t, dim), [x])


@pytest.mark.parametrize("channels", [1, 3])
def test_prelu(channels):
    rng = np.random.default_rng(2)
    x = away_from(rng.standard_normal((2, 3, 4)), (0,))
    w = rng.uniform(0.1, 0.5, channels)
    check_op(F.prelu, TF.prelu, [x, w])


def test_bad_input_is_named():
    x = tv.zeros((2, 5))
    with pytest.raises(ValueError, match=r"glu: dim -1 of input \(2, 5\) has size 5, which must be even"):
        F.glu(x)
    with pytest.raises(IndexError, match="glu: dim 2 is out of range"):
        F.glu(x, 2)
    with pytest.raises(ValueError, match=r"prelu: weight must have shape \(1,\) or \(5,\).*got \(3,\)"):
        F.prelu(x, tv.ones(3))
    with pytest.raises(ValueError, match=r"hardtanh: min_val \(2\) must not exceed max_val \(1\)"):
        F.hardtanh(x, 2, 1)
    with pytest.raises(TypeError, match="glu: input must be a floating-point tensor"):
        F.glu(tv.tensor(np.arange(4)))


def test_tinyvision_exports_the_same_names():
    for name in ("elu", "selu", "relu6", "hardswish", "hardsigmoid", "mish", "softsign", "glu",
                 "logsigmoid", "prelu", "hardtanh", "dropout1d", "dropout2d", "dropout3d"):
        assert getattr(F, name) is getattr(tv.functional, name)
        assert hasattr(TF, name)


@pytest.mark.parametrize("name", ["relu", "silu", "leaky_relu", "elu", "selu", "relu6", "hardtanh", "hardswish",
                                  "hardsigmoid", "mish", "glu", "dropout2d", "instance_norm", "grid_sample",
                                  "affine_grid", "kl_div", "binary_cross_entropy", "huber_loss", "smooth_l1_loss",
                                  "triplet_margin_loss", "cosine_embedding_loss", "mse_loss", "cross_entropy"])
def test_signature_is_torchs(name):
    """Parameter names and order as torch.nn.functional's (where torch exposes a signature)."""
    import inspect

    assert list(inspect.signature(getattr(F, name)).parameters) == list(inspect.signature(getattr(TF, name)).parameters)
