"""shapes(): the generated circles/squares/triangles, their boxes and masks."""
import numpy as np
import pytest

from tinyvision.data import DataLoader, shapes


@pytest.fixture(scope="module")
def big():
    return shapes(900, image_size=64, seed=5, target="all")


def test_samples_shapes_dtypes_labels():
    ds = shapes(30, image_size=32, seed=0)
    img, label = ds[3]
    assert img.shape == (3, 32, 32) and img.dtype == np.float32
    assert 0.0 <= ds.tensors[0].min() and ds.tensors[0].max() <= 1.0
    assert ds.tensors[1].dtype == np.int64 and set(ds.tensors[1]) <= {0, 1, 2}
    _, target = shapes(30, image_size=32, seed=0, target="all")[3]
    assert target["labels"] == label and target["boxes"].shape == (4,) and target["masks"].shape == (32, 32)
    assert target["masks"].dtype == np.bool_ and target["boxes"].dtype == np.float32


def test_seeded():
    a, b, c = shapes(5, seed=1), shapes(5, seed=1), shapes(5, seed=2)
    np.testing.assert_array_equal(a.tensors[0], b.tensors[0])
    assert not np.array_equal(a.tensors[0], c.tensors[0])


def test_boxes_are_the_mask_extents(big):
    masks, boxes = big.tensors[1]["masks"], big.tensors[1]["boxes"].astype(int)
    for m, (x0, y0, x1, y1) in zip(masks, boxes):
        assert m.any()
        assert not m[:y0].any() and not m[y1:].any() and not m[:, :x0].any() and not m[:, x1:].any()
        # each edge of the box touches the mask
        assert m[y0].any() and m[y1 - 1].any() and m[:, x0].any() and m[:, x1 - 1].any()


def test_mask_is_the_shape_class(big):
    """Mask area / box area, averaged over random rotations, against the geometry:
    circle pi/4; square 1 / (1 + |sin 2t|) -> 2/pi; equilateral triangle (computed below).
    Tolerance 0.03 covers the pixel staircase at these sizes (radius 10-22 px)."""
    masks, boxes, labels = (big.tensors[1][k] for k in ("masks", "boxes", "labels"))
    fill = masks.sum(axis=(1, 2)) / ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    t = np.linspace(0, 2 * np.pi, 20000, endpoint=False)[:, None] + 2 * np.pi * np.arange(3) / 3
    xs, ys = np.cos(t), np.sin(t)
    triangle = (3 * np.sqrt(3) / 4 / ((xs.max(1) - xs.min(1)) * (ys.max(1) - ys.min(1)))).mean()
    for c, expect in enumerate([np.pi / 4, 2 / np.pi, triangle]):
        assert abs(fill[labels == c].mean() - expect) < 0.03, (c, fill[labels == c].mean(), expect)


def test_shape_stands_out_from_background(big):
    imgs, masks = big.tensors[0], big.tensors[1]["masks"]
    for img, m in zip(imgs[:50], masks[:50]):
        inside, outside = img[:, m].mean(axis=1), img[:, ~m].mean(axis=1)
        assert np.abs(inside - outside).mean() > 0.15


def test_loader_batches_dict_targets():
    images, target = next(iter(DataLoader(shapes(10, seed=0, target="all"), batch_size=4)))
    assert images.shape == (4, 3, 32, 32) and target["boxes"].shape == (4, 4)
    assert target["masks"].shape == (4, 32, 32) and target["labels"].dtype == np.int64


def test_bad_arguments():
    with pytest.raises(ValueError, match="target must be 'label' or 'all'"):
        shapes(3, target="boxes")
    with pytest.raises(ValueError, match="image_size >= 8"):
        shapes(3, image_size=4)
