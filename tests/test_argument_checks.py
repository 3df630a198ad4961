"""Arguments that once gave a silently wrong result, or an error from deep inside NumPy/Numba.

Each case runs the same call through torch (the rule) and through tinyvision: where torch
refuses, tinyvision must refuse too, with an error that names the op and the argument; where
torch accepts, the results must agree. The dtype rule behind these is in docs/autograd.md
("dtype promotion and what is refused"); the helpers live in tinyvision/functional/_util.py.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import tinyvision as tv
import tinyvision.nn.functional as F
from tests.helpers import check_against_torch

rng = np.random.default_rng(0)
X = rng.standard_normal((1, 2, 4, 4))
XI = np.arange(32).reshape(1, 2, 4, 4)  # int64
XU8 = XI.astype(np.uint8)
MEAN, VAR = np.zeros(2), np.ones(2)


def _t(a):  # torch twin
    return torch.tensor(a)


def _v(a):  # tinyvision twin
    return tv.tensor(a)


# (label, tinyvision call, torch call, words the error must contain)
REFUSED = [
    ("interpolate bilinear int64", lambda: F.interpolate(_v(XI), scale_factor=2, mode="bilinear"),
     lambda: TF.interpolate(_t(XI), scale_factor=2, mode="bilinear"), ["interpolate", "input", "int64"]),
    ("interpolate area int64", lambda: F.interpolate(_v(XI), size=(3, 3), mode="area"),
     lambda: TF.interpolate(_t(XI), size=(3, 3), mode="area"), ["interpolate", "input", "area"]),
    ("interpolate bicubic int64", lambda: F.interpolate(_v(XI), size=(3, 3), mode="bicubic"),
     lambda: TF.interpolate(_t(XI), size=(3, 3), mode="bicubic"), ["interpolate", "input"]),
    ("pad value tuple", lambda: F.pad(_v(X), (1, 1), value=(-1, 2)),
     lambda: TF.pad(_t(X), (1, 1), value=(-1, 2)), ["pad", "value"]),
    ("pad value str", lambda: F.pad(_v(X), (1, 1), value="a"),
     lambda: TF.pad(_t(X), (1, 1), value="a"), ["pad", "value"]),
    ("pad float widths", lambda: F.pad(_v(X), (1.5, 1)),
     lambda: TF.pad(_t(X), (1.5, 1)), ["pad", "1.5"]),
    ("reshape float dim", lambda: F.reshape(_v(X), (2.5, -1)),
     lambda: torch.reshape(_t(X), (2.5, -1)), ["reshape", "shape", "2.5"]),
    ("reshape integral float dim", lambda: _v(X).reshape(2.0, -1),
     lambda: _t(X).reshape(2.0, -1), ["reshape", "shape"]),
    ("reshape bool dim", lambda: F.reshape(_v(X), (True, -1)),
     lambda: torch.reshape(_t(X), (True, -1)), ["reshape", "bool"]),
    ("cat of one tensor", lambda: tv.cat(tv.ones(2, 3)),
     lambda: torch.cat(torch.ones(2, 3)), ["cat", "tensors", "Tensor"]),
    ("stack of one tensor", lambda: tv.stack(tv.ones(2, 3)),
     lambda: torch.stack(torch.ones(2, 3)), ["stack", "tensors"]),
    ("cat of 0-d tensors", lambda: tv.cat([_v(np.float64(1)), _v(np.float64(2))]),
     lambda: torch.cat([torch.tensor(1.0), torch.tensor(2.0)]), ["cat", "zero-dimensional"]),
    ("cat float dim", lambda: tv.cat([tv.ones(2, 3)], dim=0.5),
     lambda: torch.cat([torch.ones(2, 3)], dim=0.5), ["cat", "dim"]),
    ("batch_norm eps < 0", lambda: F.batch_norm(_v(X), _v(MEAN), _v(VAR), eps=-1.0),
     lambda: TF.batch_norm(_t(X), _t(MEAN), _t(VAR), eps=-1.0), ["batch_norm", "eps"]),
    ("batch_norm eps < 0 training", lambda: F.batch_norm(_v(X), None, None, training=True, eps=-1.0),
     lambda: TF.batch_norm(_t(X), None, None, training=True, eps=-1.0), ["batch_norm", "eps"]),
    ("conv2d kernel height 0", lambda: F.conv2d(_v(X), _v(np.ones((3, 2, 0, 3))), _v(np.ones(3))),
     lambda: TF.conv2d(_t(X), _t(np.ones((3, 2, 0, 3))), _t(np.ones(3))), ["conv2d", "weight", "(3, 2, 0, 3)"]),
    ("conv2d kernel 0x0", lambda: F.conv2d(_v(X), _v(np.ones((3, 2, 0, 0)))),
     lambda: TF.conv2d(_t(X), _t(np.ones((3, 2, 0, 0)))), ["conv2d", "weight"]),
    ("conv2d 0 output channels", lambda: F.conv2d(_v(X), _v(np.ones((0, 2, 3, 3)))),
     lambda: TF.conv2d(_t(X), _t(np.ones((0, 2, 3, 3)))), ["conv2d", "weight"]),
    ("softmax uint8", lambda: F.softmax(_v(XU8), -1),
     lambda: torch.softmax(_t(XU8), -1), ["softmax", "input", "uint8"]),
    ("softmax int64", lambda: F.softmax(_v(XI), -1),
     lambda: torch.softmax(_t(XI), -1), ["softmax", "input", "int64"]),
    ("softmax bool", lambda: F.softmax(_v(XI > 3), -1),
     lambda: torch.softmax(_t(XI > 3), -1), ["softmax", "bool"]),
    ("log_softmax int64", lambda: F.log_softmax(_v(XI), -1),
     lambda: torch.log_softmax(_t(XI), -1), ["log_softmax", "int64"]),
    ("mean int64", lambda: _v(XI).mean(), lambda: _t(XI).mean(), ["mean", "int64"]),
    ("var int64", lambda: _v(XI).var(), lambda: _t(XI).var(), ["var", "int64"]),
    ("norm int64", lambda: F.norm(_v(XI)), lambda: torch.norm(_t(XI)), ["norm", "int64"]),
    ("normalize int64", lambda: F.normalize(_v(XI)), lambda: TF.normalize(_t(XI)), ["norm", "int64"]),
    ("layer_norm int64", lambda: F.layer_norm(_v(XI), (4,)), lambda: TF.layer_norm(_t(XI), (4,)),
     ["layer_norm", "int64"]),
    ("batch_norm int64", lambda: F.batch_norm(_v(XI), _v(MEAN), _v(VAR)),
     lambda: TF.batch_norm(_t(XI), _t(MEAN), _t(VAR)), ["batch_norm", "int64"]),
    ("cross_entropy int64 logits", lambda: F.cross_entropy(_v(XI[0, 0]), _v(np.array([0, 1, 2, 3]))),
     lambda: TF.cross_entropy(_t(XI[0, 0]), _t(np.array([0, 1, 2, 3]))), ["cross_entropy", "input"]),
    ("mse_loss int64", lambda: F.mse_loss(_v(XI), _v(XI)), lambda: TF.mse_loss(_t(XI), _t(XI)),
     ["mse_loss", "input"]),
    ("dropout int64", lambda: F.dropout(_v(XI), 0.5), lambda: TF.dropout(_t(XI), 0.5), ["dropout", "int64"]),
    ("matmul with a list", lambda: F.matmul(_v(X), [1, 2]), lambda: torch.matmul(_t(X), [1, 2]),
     ["matmul", "other", "list"]),
    ("unfold of 0 channels", lambda: F.unfold(_v(np.ones((1, 0, 4, 4))), 2),
     lambda: TF.unfold(_t(np.ones((1, 0, 4, 4))), 2), ["unfold", "(1, 0, 4, 4)"]),
    ("sdpa with mixed dtypes", lambda: F.scaled_dot_product_attention(_v(X), _v(X.astype(np.float32)), _v(X)),
     lambda: TF.scaled_dot_product_attention(_t(X), _t(X.astype(np.float32)), _t(X)),
     ["scaled_dot_product_attention", "dtype"]),
    ("adaptive_avg_pool2d int64", lambda: F.adaptive_avg_pool2d(_v(XI), 2),
     lambda: TF.adaptive_avg_pool2d(_t(XI), 2), ["adaptive_avg_pool2d", "int64"]),
]


@pytest.mark.parametrize("label, ours, theirs, words", REFUSED, ids=[c[0] for c in REFUSED])
def test_refused_as_torch_refuses(label, ours, theirs, words):
    with pytest.raises(Exception):  # the rule: torch refuses this call
        theirs()
    with pytest.raises((TypeError, ValueError, IndexError, RuntimeError)) as info:
        ours()
    for word in words:
        assert word in str(info.value), f"{label}: {word!r} missing from {info.value!r}"


def test_pad_value_none_pads_with_zero_as_torch():
    a = F.pad(_v(X), (1, 1), value=None).numpy()
    np.testing.assert_array_equal(a, TF.pad(_t(X), (1, 1), value=None).numpy())
    assert a[..., 0].max() == 0 and not np.isnan(a).any()


def test_pad_keeps_the_input_dtype_with_a_float_value_on_ints():
    a = F.pad(_v(XI), (1, 1), value=2.5)
    b = TF.pad(_t(XI), (1, 1), value=2.5)
    assert a.dtype == np.int64
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_interpolate_nearest_keeps_uint8_as_torch():
    a = F.interpolate(_v(XU8), scale_factor=2, mode="nearest")
    b = TF.interpolate(_t(XU8), scale_factor=2, mode="nearest")
    assert a.dtype == np.uint8
    np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("ndim", [1, 2, 3, 4])
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_dim_none_is_torchs_implicit_choice(op, ndim):
    x = rng.standard_normal((2, 3, 4, 5)[:ndim])
    with pytest.warns(UserWarning, match="implicit dimension"):
        ours = getattr(F, op)(_v(x), dim=None).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = getattr(TF, op)(_t(x), dim=None).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


def test_softmax_dtype_casts_first_as_torch():
    ours = F.softmax(_v(XI.astype(np.float64)[0, 0]), -1, dtype=np.float32)
    theirs = torch.softmax(_t(XI[0, 0]), -1, dtype=torch.float32)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)


@pytest.mark.parametrize("case", ["matmul", "linear", "embedding"])
def test_backward_through_a_zero_size_weight(case):
    """A 0-column weight gives an empty output; its backward must give empty/zero gradients
    (it once failed in reshape(-1, 0)). Compared with torch where torch allows it."""
    x = rng.standard_normal((2, 3, 4))
    if case == "matmul":
        check_against_torch(lambda a, w: a @ w, lambda a, w: a @ w, [x, np.ones((4, 0))])
    elif case == "linear":
        check_against_torch(F.linear, TF.linear, [x, np.ones((0, 4))])
    else:
        w = tv.tensor(np.ones((5, 0)), requires_grad=True)
        out = F.embedding(tv.tensor(np.array([[0, 4], [1, 1]])), w)
        assert out.shape == (2, 2, 0)
        out.sum().backward()
        assert w.grad.shape == (5, 0)


def test_max_pool2d_float16_is_refused_by_name():
    with pytest.raises(TypeError, match="max_pool2d: input must be float32 or float64, got dtype float16"):
        F.max_pool2d(tv.tensor(X.astype(np.float16)), 2)
