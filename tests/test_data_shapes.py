"""shapes() and shapes_scenes(): the generated circles/squares/triangles, their boxes, instance masks and semantic maps."""
import numpy as np
import pytest

from tinyvision.data import DataLoader, shapes, shapes_scenes
from tinyvision.data.shapes import mask_to_box


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
    with pytest.raises(ValueError, match="target must be .label., .all. or .semantic."):
        shapes(3, target="boxes")
    with pytest.raises(ValueError, match="image_size >= 8"):
        shapes(3, image_size=4)


def test_semantic_target_is_label_plus_one_on_the_mask():
    _, semantic = shapes(20, image_size=32, seed=4, target="semantic")[7]
    _, target = shapes(20, image_size=32, seed=4, target="all")[7]
    assert semantic.dtype == np.int64 and semantic.shape == (32, 32)
    np.testing.assert_array_equal(semantic, np.where(target["masks"], target["labels"] + 1, 0))


@pytest.fixture(scope="module")
def scenes():
    return shapes_scenes(200, image_size=64, seed=3)


def test_scene_targets_shapes_dtypes_and_counts(scenes):
    counts = []
    for i in range(len(scenes)):
        img, t = scenes[i]
        n = len(t["labels"])
        counts.append(n)
        assert img.shape == (3, 64, 64) and img.dtype == np.float32
        assert t["boxes"].shape == (n, 4) and t["boxes"].dtype == np.float32
        assert t["masks"].shape == (n, 64, 64) and t["masks"].dtype == np.bool_
        assert t["labels"].dtype == np.int64 and set(t["labels"]) <= {1, 2, 3}
        assert t["semantic"].shape == (64, 64) and t["semantic"].dtype == np.int64
    assert 1 <= min(counts) and max(counts) == 5 and len(set(counts)) == 5


def test_scene_masks_disjoint_nonempty_boxes_match_semantic_agrees(scenes):
    occluded = 0
    for i in range(len(scenes)):
        _, t = scenes[i]
        masks = t["masks"]
        assert masks.any(axis=(1, 2)).all()                       # fully covered objects dropped
        assert masks.sum(axis=0).max() <= 1                       # disjoint
        for m, box in zip(masks, t["boxes"]):
            np.testing.assert_array_equal(box, mask_to_box(m))
            x0, y0, x1, y1 = box.astype(int)
            assert not m[:y0].any() and not m[y1:].any() and not m[:, :x0].any() and not m[:, x1:].any()
            assert m[y0].any() and m[y1 - 1].any() and m[:, x0].any() and m[:, x1 - 1].any()
        expect = np.zeros((64, 64), np.int64)
        for m, lab in zip(masks, t["labels"]):
            expect[m] = lab
        np.testing.assert_array_equal(t["semantic"], expect)
        # boxes of the visible parts: some objects are cut by later ones
        full = [mask_to_box(m) for m in masks]
        occluded += sum(((b[2] - b[0]) * (b[3] - b[1]) > m.sum()) for b, m in zip(full, masks))
    assert occluded > 0


def test_scene_occlusion_drops_fully_covered_objects():
    """With many objects per image some are fully covered and dropped: fewer than drawn."""
    ds = shapes_scenes(60, image_size=32, min_objects=8, max_objects=8, seed=0)
    counts = [len(ds[i][1]["labels"]) for i in range(len(ds))]
    assert min(counts) < 8 and max(counts) <= 8 and min(counts) >= 1


def test_scene_objects_stand_out():
    """Each visible object differs in colour from the background (contrast >= 0.35 before noise)."""
    ds = shapes_scenes(30, seed=1)
    for i in range(len(ds)):
        img, t = ds[i]
        bg = img[:, t["semantic"] == 0].mean(axis=1)
        for m in t["masks"]:
            if m.sum() > 20:
                assert np.abs(img[:, m].mean(axis=1) - bg).mean() > 0.15


def test_scenes_seeded():
    a, b, c = shapes_scenes(6, seed=1), shapes_scenes(6, seed=1), shapes_scenes(6, seed=2)
    np.testing.assert_array_equal(a.images, b.images)
    for i in range(6):
        for k in ("boxes", "labels", "masks", "semantic"):
            np.testing.assert_array_equal(a[i][1][k], b[i][1][k])
    assert not np.array_equal(a.images, c.images)


def test_scenes_semantic_target_batches():
    ds = shapes_scenes(10, image_size=32, seed=0, target="semantic")
    images, semantic = next(iter(DataLoader(ds, batch_size=4)))
    assert images.shape == (4, 3, 32, 32) and semantic.shape == (4, 32, 32) and semantic.dtype == np.int64
    np.testing.assert_array_equal(semantic.numpy()[1], ds[1][1])
    calls = []
    ds.transforms = lambda img, t: (calls.append(1) or (img, t))   # a joint transform runs per sample
    assert ds.gather(np.arange(2)) is None and ds[0][1].shape == (32, 32) and calls


def test_scenes_bad_arguments():
    with pytest.raises(ValueError, match="min_objects <= max_objects"):
        shapes_scenes(3, min_objects=3, max_objects=2)
    with pytest.raises(ValueError, match="target must be 'all' or 'semantic'"):
        shapes_scenes(3, target="label")
    with pytest.raises(ValueError, match="image_size >= 16"):
        shapes_scenes(3, image_size=8)


def test_scenes_with_many_objects_terminate():
    """More objects than colours that can be pairwise far apart: still drawn (and some hidden)."""
    ds = shapes_scenes(2, image_size=32, min_objects=40, max_objects=40, seed=0)
    assert all(1 <= len(ds[i][1]["labels"]) <= 40 for i in range(2))
