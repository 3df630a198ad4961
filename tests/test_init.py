"""tinyvision.nn.init against torch.nn.init.

The generators differ, so values cannot match: each initialiser is compared with torch's as
a *distribution* (two-sample Kolmogorov-Smirnov test on ~50k draws each, seeds fixed so the
test is deterministic; a wrong scale or shape of distribution gives p ~ 0), plus the hard
bounds and the formulas (gain, fans) exactly.
"""
import math

import numpy as np
import pytest
import torch
from scipy.stats import ks_2samp

import tinyvision as tv
import tinyvision.nn as nn
from tinyvision.nn import init

SHAPE = (64, 32, 5, 5)  # 51200 draws; fan_in = 800, fan_out = 1600
P_MIN = 1e-3


def same_distribution(ours_fn, torch_fn, shape=SHAPE, dtype=np.float32):
    tv.manual_seed(0)
    torch.manual_seed(0)
    ours = ours_fn(tv.zeros(shape, dtype=dtype))
    theirs = torch_fn(torch.zeros(shape, dtype=torch.float64 if dtype == np.float64 else torch.float32))
    assert ours.dtype == dtype and ours.shape == tuple(theirs.shape)
    a, b = ours.numpy().ravel(), theirs.numpy().ravel()
    assert ks_2samp(a, b).pvalue > P_MIN, (a.std(), b.std(), a.mean(), b.mean())
    return a


@pytest.mark.parametrize("nonlinearity,param", [("linear", None), ("conv2d", None), ("sigmoid", None),
                                                ("tanh", None), ("relu", None), ("leaky_relu", None),
                                                ("leaky_relu", 0.2), ("leaky_relu", math.sqrt(5)), ("selu", None)])
def test_calculate_gain_matches_torch(nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(torch.nn.init.calculate_gain(nonlinearity, param))


@pytest.mark.parametrize("shape", [(3, 4), (8, 3, 5, 5), (6, 2, 3), (4, 1, 1, 1)])
def test_fans_match_torch(shape):
    assert init._calculate_fan_in_and_fan_out(tv.zeros(shape)) == \
        torch.nn.init._calculate_fan_in_and_fan_out(torch.zeros(shape))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
def test_kaiming_uniform(mode, dtype):
    a = same_distribution(lambda t: init.kaiming_uniform_(t, a=math.sqrt(5), mode=mode),
                          lambda t: torch.nn.init.kaiming_uniform_(t, a=math.sqrt(5), mode=mode), dtype=dtype)
    fan = 800 if mode == "fan_in" else 1600
    bound = math.sqrt(3) * math.sqrt(2 / (1 + 5)) / math.sqrt(fan)  # = 1/sqrt(fan)
    assert np.abs(a).max() <= bound and np.abs(a).max() > 0.99 * bound


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
def test_kaiming_normal(mode):
    a = same_distribution(lambda t: init.kaiming_normal_(t, mode=mode, nonlinearity="relu"),
                          lambda t: torch.nn.init.kaiming_normal_(t, mode=mode, nonlinearity="relu"))
    fan = 800 if mode == "fan_in" else 1600
    assert a.std() == pytest.approx(math.sqrt(2 / fan), rel=0.02)  # std error of a std ~ 1/sqrt(2n) = 0.3%


def test_xavier():
    same_distribution(lambda t: init.xavier_uniform_(t, gain=2.0), lambda t: torch.nn.init.xavier_uniform_(t, gain=2.0))
    a = same_distribution(lambda t: init.xavier_normal_(t, gain=0.5), lambda t: torch.nn.init.xavier_normal_(t, gain=0.5))
    assert a.std() == pytest.approx(0.5 * math.sqrt(2 / (800 + 1600)), rel=0.02)


@pytest.mark.parametrize("mean,std,a,b", [(0.0, 1.0, -2.0, 2.0), (0.0, 1.0, -0.5, 1.5), (1.0, 0.02, 0.99, 2.0)])
def test_trunc_normal(mean, std, a, b):
    x = same_distribution(lambda t: init.trunc_normal_(t, mean, std, a, b),
                          lambda t: torch.nn.init.trunc_normal_(t, mean, std, a, b))
    assert x.min() >= a and x.max() <= b


def test_normal_uniform_constant():
    a = same_distribution(lambda t: init.normal_(t, 2.0, 3.0), lambda t: torch.nn.init.normal_(t, 2.0, 3.0))
    assert a.mean() == pytest.approx(2.0, abs=0.05) and a.std() == pytest.approx(3.0, rel=0.02)
    a = same_distribution(lambda t: init.uniform_(t, -1.0, 3.0), lambda t: torch.nn.init.uniform_(t, -1.0, 3.0))
    assert a.min() >= -1 and a.max() < 3
    t = tv.zeros(2, 3)
    assert np.all(init.ones_(t).numpy() == 1) and np.all(init.zeros_(t).numpy() == 0)
    assert np.all(init.constant_(t, 0.25).numpy() == 0.25)


def test_fills_parameters_in_place_and_repeats_under_seed():
    p = nn.Parameter(tv.zeros(4, 3))
    tv.manual_seed(7)
    out = init.kaiming_uniform_(p)
    assert out is p and p.requires_grad and p.grad_fn is None
    first = p.detach().numpy().copy()
    tv.manual_seed(7)
    init.kaiming_uniform_(p)
    np.testing.assert_array_equal(p.detach().numpy(), first)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(tv.zeros(3))
    with pytest.raises(ValueError, match="fan_in"):
        init.kaiming_normal_(tv.zeros(3, 3), mode="fan_avg")
    with pytest.raises(ValueError, match="nonlinearity"):
        init.kaiming_normal_(tv.zeros(3, 3), nonlinearity="swish")
    with pytest.raises(ValueError, match="a < b"):
        init.trunc_normal_(tv.zeros(3), a=1.0, b=0.0)


@pytest.mark.parametrize("make", [
    lambda lib: lib.Linear(400, 128),
    lambda lib: lib.Conv2d(16, 64, 5),
    lambda lib: lib.ConvTranspose2d(32, 16, 4, groups=2),
    lambda lib: lib.MultiheadAttention(128, 4),
    lambda lib: lib.Embedding(500, 64),
], ids=["Linear", "Conv2d", "ConvTranspose2d", "MultiheadAttention", "Embedding"])
def test_default_layer_init_matches_torch(make):
    """Each parameter of a freshly built layer is drawn like torch's (zeros stay zeros)."""
    tv.manual_seed(0)
    torch.manual_seed(0)
    ours, theirs = make(nn), make(torch.nn)
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        a, b = p.detach().numpy().ravel(), theirs_params[name].detach().numpy().ravel()
        if np.all(b == 0):
            assert np.all(a == 0), name
        else:
            assert ks_2samp(a, b).pvalue > P_MIN, name
