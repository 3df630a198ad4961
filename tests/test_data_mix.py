"""MixUp / CutMix: mixed pixels and label weights agree with the lambda / pasted area;
soft-target cross-entropy against torch."""
import numpy as np
import pytest
import torch
from scipy import stats

import tinyvision as tv
from tests.helpers import DTYPES, check_against_torch
from tinyvision.data import CutMix, MixUp, soft_target_cross_entropy


def batch(n=4, k=5, seed=0):
    r = np.random.default_rng(seed)
    return r.random((n, 3, 8, 10)).astype(np.float32), r.permutation(k)[:n]   # distinct labels


def test_mixup_pixels_and_labels_use_lambda():
    tv.manual_seed(0)
    x, y = batch()
    mix = MixUp(alpha=0.4, num_classes=5)
    images, targets = mix(tv.tensor(x), tv.tensor(y))
    lam = mix.last_lam
    onehot = np.eye(5)[y]
    np.testing.assert_allclose(images.numpy(), lam * x + (1 - lam) * np.roll(x, 1, axis=0), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(targets.numpy(), lam * onehot + (1 - lam) * np.roll(onehot, 1, axis=0), rtol=1e-6)
    assert targets.shape == (4, 5) and targets.dtype == np.float32
    np.testing.assert_allclose(targets.numpy().sum(1), 1.0, rtol=1e-6)


def test_mixup_lambda_is_beta_distributed():
    tv.manual_seed(1)
    x, y = batch(n=2)
    mix, lams = MixUp(alpha=0.5, num_classes=5), []
    for _ in range(1000):
        mix(x, y)
        lams.append(mix.last_lam)
    assert stats.kstest(lams, "beta", args=(0.5, 0.5)).pvalue > 1e-3


@pytest.mark.parametrize("seed", range(6))
def test_cutmix_label_weight_is_the_pasted_area(seed):
    tv.manual_seed(seed)
    x, y = batch(seed=seed)
    mix = CutMix(alpha=1.0, num_classes=5)
    images, targets = mix(x, y)
    out, donor = images.numpy(), np.roll(x, 1, axis=0)
    pasted = np.all(out == donor, axis=1) & np.any(donor != x, axis=1)   # (N, H, W): pixels from the neighbour
    kept = np.all(out == x, axis=1)
    assert np.all(pasted | kept)
    area = pasted.sum(axis=(1, 2)) / (8 * 10)                          # the same box for every image
    assert np.all(area == area[0])
    x0, y0, x1, y1 = mix.last_box
    assert pasted[0, y0:y1, x0:x1].all() and area[0] == (x1 - x0) * (y1 - y0) / 80
    np.testing.assert_allclose(mix.last_lam, 1 - area[0])
    onehot = np.eye(5)[y]
    np.testing.assert_allclose(targets.numpy(), (1 - area[0]) * onehot + area[0] * np.roll(onehot, 1, axis=0),
                               rtol=1e-6, atol=1e-7)


def test_bad_inputs():
    x, y = batch()
    with pytest.raises(ValueError, match=r"labels must be \(N,\) integer class indices with N = 4"):
        MixUp()(x, y[:3])
    with pytest.raises(ValueError, match=r"images must be a float \(N, C, H, W\) batch"):
        CutMix()(x[0], y)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        MixUp(num_classes=3)(x, np.array([0, 1, 2, 4]))
    with pytest.raises(ValueError, match="alpha must be positive"):
        CutMix(alpha=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_soft_target_cross_entropy_matches_torch(dtype):
    r = np.random.default_rng(0)
    logits = r.standard_normal((6, 5)).astype(dtype)
    target = r.dirichlet(np.ones(5), 6).astype(dtype)
    check_against_torch(soft_target_cross_entropy,
                        lambda a, b: torch.nn.functional.cross_entropy(a, b), [logits, target],
                        requires_grad=[True, False])


def test_soft_target_cross_entropy_gradcheck():
    r = np.random.default_rng(1)
    target = tv.tensor(r.dirichlet(np.ones(4), 3))
    logits = tv.tensor(r.standard_normal((3, 4)), requires_grad=True)
    assert tv.gradcheck(lambda z: soft_target_cross_entropy(z, target), [logits])
    with pytest.raises(ValueError, match="target must be float probabilities"):
        soft_target_cross_entropy(tv.tensor(r.standard_normal((3, 4))), tv.tensor(np.array([0, 1, 2])))
