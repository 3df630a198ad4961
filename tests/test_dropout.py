"""functional/dropout.py: dropout and the channel forms. A random mask cannot be compared with
torch's element by element, so the tests check what defines the op: the kept fraction, the
1/(1-p) scale, whole channels zeroed together (torch's mask layout, checked on torch too),
the gradient equal to the mask, eval and p = 0 as the identity, and seeding."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import tinyvision as tv

F = tv.nn.functional
CASES = [  # (ours, torch, input shape, dims that share one mask entry)
    (F.dropout, TF.dropout, (8, 16, 4, 4), ()),
    (F.dropout1d, TF.dropout1d, (8, 64, 5), (2,)),
    (F.dropout2d, TF.dropout2d, (8, 64, 3, 3), (2, 3)),
    (F.dropout3d, TF.dropout3d, (8, 32, 2, 2, 2), (2, 3, 4)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ours, theirs, shape, shared", CASES)
def test_mask_layout_scale_and_gradient(ours, theirs, shape, shared, dtype):
    p = 0.3
    tv.manual_seed(0)
    x = tv.tensor(np.random.default_rng(0).uniform(1, 2, shape).astype(dtype), requires_grad=True)
    y = ours(x, p)
    y.sum().backward()
    mask = y.detach().numpy() / x.detach().numpy()
    assert y.dtype == dtype
    kept = mask != 0
    np.testing.assert_allclose(mask[kept], 1 / (1 - p), rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), mask, rtol=1e-6)  # d(x * m)/dx = m
    assert abs((mask == 0).mean() - p) < 0.05  # about p of the units are dropped
    # torch's mask is constant along the same dims as ours
    t = theirs(torch.ones(shape, dtype=torch.float64), p).numpy()
    for dropped in (mask == 0, t == 0):
        if shared:
            assert (dropped == dropped.take([0], axis=shared[0])).all()
        else:
            assert not (dropped == dropped.take([0], axis=-1)).all()


@pytest.mark.parametrize("ours", [F.dropout, F.dropout2d])
def test_identity_when_not_training_or_p_zero_and_zero_when_p_one(ours):
    x = tv.ones((2, 3, 4, 4))
    assert ours(x, 0.5, training=False) is x
    assert ours(x, 0.0) is x
    assert float(ours(x, 1.0).abs().sum()) == 0.0


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


def test_dropout2d_on_3d_input_is_torch_2_channelwise_1d():
    x = tv.ones((4, 64, 6))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y = F.dropout2d(x, 0.5).numpy()
    assert any("3-D input" in str(w.message) for w in caught)
    assert (y == y[:, :, :1]).all() and not (y == y[:, :1, :]).all()  # whole (n, c) rows


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"dropout: p must be in \[0, 1\], got 1.5"):
        F.dropout(tv.ones(3), 1.5)
    with pytest.raises(ValueError, match=r"dropout2d: input must be \(N, C, 2 spatial dims\).*got shape \(3, 4\)"):
        F.dropout2d(tv.ones((3, 4)))
