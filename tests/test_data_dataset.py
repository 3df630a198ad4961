"""TensorDataset and Subset: indexing, gather, transforms, bad input."""
import numpy as np
import pytest

import tinyvision as tv
from tinyvision.data import Subset, TensorDataset


def test_tensor_dataset_rows_and_gather():
    x = np.arange(24, dtype=np.float32).reshape(6, 2, 2)
    y = np.arange(6) * 10
    ds = TensorDataset(tv.tensor(x), y)   # a Tensor and an array
    assert len(ds) == 6
    xi, yi = ds[4]
    np.testing.assert_array_equal(xi, x[4])
    assert yi == 40
    xb, yb = ds.gather(np.array([5, 0, 2]))
    np.testing.assert_array_equal(xb, x[[5, 0, 2]])
    np.testing.assert_array_equal(yb, y[[5, 0, 2]])


def test_dict_targets_are_indexed_leaf_by_leaf():
    boxes = np.arange(12, dtype=np.float32).reshape(3, 4)
    ds = TensorDataset(np.zeros((3, 1, 2, 2), np.float32), {"labels": np.array([7, 8, 9]), "boxes": boxes})
    _, t = ds[1]
    assert t["labels"] == 8
    np.testing.assert_array_equal(t["boxes"], boxes[1])


def test_transform_applies_to_image_and_disables_gather():
    ds = TensorDataset(np.ones((4, 1, 2, 2), np.float32), np.arange(4),
                       transform=lambda img: img * 3, target_transform=lambda t: t + 100)
    img, t = ds[2]
    np.testing.assert_array_equal(img, np.full((1, 2, 2), 3.0))
    assert t == 102
    assert ds.gather(np.array([0, 1])) is None


def test_lengths_must_agree():
    with pytest.raises(ValueError, match=r"same length.*\(3, 2\).*\(4,\)"):
        TensorDataset(np.zeros((3, 2)), np.zeros(4))


def test_subset_maps_indices_and_gathers():
    ds = TensorDataset(np.arange(10) * 2)
    sub = Subset(ds, [9, 3, 5])
    assert len(sub) == 3 and sub[1][0] == 6
    np.testing.assert_array_equal(sub.gather(np.array([2, 0]))[0], [10, 18])
    with pytest.raises(IndexError, match=r"\[0, 10\)"):
        Subset(ds, [10])
