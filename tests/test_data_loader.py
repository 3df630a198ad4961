"""DataLoader: every sample once per epoch, batch sizes, seeded shuffling, collation dtypes."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinyvision as tv
from tinyvision.data import DataLoader, Dataset, TensorDataset, default_collate


class PerSample(Dataset):
    """A dataset without gather(), so the loader takes the per-sample path."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return np.full((2, 3), i, np.float64), i


def _ids(loader):
    """The sample ids of one epoch, batch by batch."""
    return [b[1].numpy().tolist() for b in loader]


@given(n=st.integers(1, 40), batch_size=st.integers(1, 12), shuffle=st.booleans(),
       drop_last=st.booleans(), fast=st.booleans())
def test_each_sample_once_per_epoch(n, batch_size, shuffle, drop_last, fast):
    ds = TensorDataset(np.zeros((n, 1)), np.arange(n)) if fast else PerSample(n)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, seed=1)
    batches = _ids(loader)
    assert len(batches) == len(loader) == (n // batch_size if drop_last else -(-n // batch_size))
    seen = [i for b in batches for i in b]
    assert len(seen) == len(set(seen))                       # no sample twice
    if drop_last:
        assert all(len(b) == batch_size for b in batches)
        assert len(seen) == n - n % batch_size
    else:
        assert sorted(seen) == list(range(n))                 # every sample
        assert all(len(b) == batch_size for b in batches[:-1])
    if not shuffle:
        assert seen == list(range(len(seen)))


def test_seed_reproduces_and_epochs_differ():
    ds = TensorDataset(np.arange(50))
    a, b = DataLoader(ds, 10, shuffle=True, seed=3), DataLoader(ds, 10, shuffle=True, seed=3)
    epochs_a = [np.concatenate([x.numpy() for (x,) in a]) for _ in range(2)]
    epochs_b = [np.concatenate([x.numpy() for (x,) in b]) for _ in range(2)]
    np.testing.assert_array_equal(epochs_a[0], epochs_b[0])
    np.testing.assert_array_equal(epochs_a[1], epochs_b[1])
    assert not np.array_equal(epochs_a[0], epochs_a[1])       # a new permutation each epoch
    assert not np.array_equal(epochs_a[0], np.arange(50))


def test_global_seed_drives_shuffle_without_seed():
    ds = TensorDataset(np.arange(30))
    tv.manual_seed(7)
    first = [x.numpy() for (x,) in DataLoader(ds, 30, shuffle=True)][0]
    tv.manual_seed(7)
    again = [x.numpy() for (x,) in DataLoader(ds, 30, shuffle=True)][0]
    np.testing.assert_array_equal(first, again)


def test_fast_and_per_sample_paths_give_the_same_batches():
    x = np.random.default_rng(0).random((9, 1, 2, 2))
    fast = TensorDataset(x, np.arange(9))
    slow = TensorDataset(x, np.arange(9), transform=lambda img: img)  # a transform forces ds[i]
    for (xa, ya), (xb, yb) in zip(DataLoader(fast, 4), DataLoader(slow, 4)):
        np.testing.assert_array_equal(xa.numpy(), xb.numpy())
        np.testing.assert_array_equal(ya.numpy(), yb.numpy())
        assert xa.dtype == xb.dtype == np.float32 and ya.dtype == yb.dtype == np.int64


def test_collate_dtypes_and_nesting():
    samples = [(np.full((1, 2), i, np.float64), i, 0.5 * i, np.uint8(i), {"box": np.arange(4) + i, "flag": True},
                tv.tensor([i, i])) for i in range(3)]
    img, label, number, pixel, target, t = default_collate(samples)
    assert isinstance(img, tv.Tensor) and img.shape == (3, 1, 2) and img.dtype == np.float32
    assert label.dtype == np.int64 and label.tolist() == [0, 1, 2]
    assert number.dtype == np.float32 and pixel.dtype == np.uint8
    assert target["box"].shape == (3, 4) and target["box"].dtype == np.int64
    assert target["flag"].dtype == np.bool_
    assert t.shape == (3, 2) and t.dtype == np.int64
    assert default_collate(["a", "b"]) == ["a", "b"]


def test_custom_collate_fn_gets_the_sample_list():
    loader = DataLoader(TensorDataset(np.arange(5)), batch_size=2, collate_fn=lambda s: len(s))
    assert list(loader) == [2, 2, 1]


def test_bad_arguments():
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        DataLoader(TensorDataset(np.arange(3)), batch_size=0)
    with pytest.raises(TypeError, match="cannot batch samples of type object"):
        default_collate([object(), object()])
