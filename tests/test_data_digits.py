"""digits(): the scikit-learn 8x8 digits, split, scaling and the 32x32 resize."""
import sys

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from tinyvision.data import digits


@pytest.fixture(scope="module")
def raw():
    bunch = load_digits()
    return bunch.images, bunch.target


def test_split_is_stratified_disjoint_and_complete(raw):
    train, test = digits(train=True), digits(train=False)
    assert len(train) + len(test) == 1797
    assert (len(train), len(test)) == (1442, 355)
    for c in range(10):   # each class 4:1
        n_train, n_test = ((ds.tensors[1] == c).sum() for ds in (train, test))
        n = (raw[1] == c).sum()
        assert n_test == n // 5 and n_train == n - n // 5
    # the two parts together are exactly the original images (scaled by 1/16)
    both = np.concatenate([train.tensors[0], test.tensors[0]])[:, 0] * 16
    ours = sorted(map(bytes, both.astype(np.uint8)))
    theirs = sorted(map(bytes, raw[0].astype(np.uint8)))
    assert ours == theirs


def test_images_and_labels(raw):
    ds = digits(train=False)
    img, label = ds[0]
    assert img.shape == (1, 8, 8) and img.dtype == np.float32 and ds.tensors[1].dtype == np.int64
    assert 0.0 <= ds.tensors[0].min() and ds.tensors[0].max() == 1.0
    # the first test sample of class 0 is the 5th zero in scikit-learn's order
    fifth_zero = np.flatnonzero(raw[1] == 0)[4]
    zero_test = ds.tensors[0][ds.tensors[1] == 0][0, 0]
    np.testing.assert_allclose(zero_test, raw[0][fifth_zero] / 16)


def test_size_32_is_bilinear_like_torch(raw):
    ds = digits(train=True, size=32)
    assert ds.tensors[0].shape == (1442, 1, 32, 32)
    small = digits(train=True).tensors[0][:5]
    expect = torch.nn.functional.interpolate(torch.tensor(small), size=(32, 32), mode="bilinear",
                                             align_corners=False).numpy()
    np.testing.assert_allclose(ds.tensors[0][:5], expect, rtol=1e-6, atol=1e-6)


def test_missing_sklearn_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"pip install tinyvision\[data\]"):
        digits()
