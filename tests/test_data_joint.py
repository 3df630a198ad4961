"""Joint (image, target) transforms and Copy-Paste.

The property test paints each pixel with its own coordinates (channel 0 = row + 1, channel 1 =
column + 1, 0 = "came from outside"), runs a random chain of geometric transforms with nearest
interpolation, and checks that every output pixel's mask bits, class and box membership are
those of the input pixel it came from, and that boxes are the moved masks' extents.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyvision as tv
from tinyvision.data import joint as J
from tinyvision.data import shapes_scenes
from tinyvision.data.shapes import mask_to_box

SCENES = shapes_scenes(12, image_size=32, seed=7)


def coordinate_image(h, w):
    rows, cols = np.mgrid[0:h, 0:w]
    return np.stack([rows + 1, cols + 1, np.zeros((h, w))]).astype(np.float32)


def step(kind, value):
    """One geometric transform with nearest interpolation, from a drawn kind and number."""
    if kind == "hflip":
        return J.RandomHorizontalFlip(p=1.0)
    if kind == "vflip":
        return J.RandomVerticalFlip(p=1.0)
    if kind == "resize":
        return J.Resize((16 + value % 32, 16 + (value * 7) % 32), interpolation="nearest")
    if kind == "crop":
        return J.RandomResizedCrop(24, scale=(0.3, 1.0), interpolation="nearest")
    if kind == "rotate":
        return J.RandomRotation(45, interpolation="nearest")
    return J.RandomAffine(30, translate=(0.2, 0.2), scale=(0.7, 1.3), shear=10, interpolation="nearest")


@settings(max_examples=30, deadline=None)
@given(chain=st.lists(st.tuples(st.sampled_from(["hflip", "vflip", "resize", "crop", "rotate", "affine"]),
                                st.integers(0, 1000)), min_size=1, max_size=4),
       index=st.integers(0, len(SCENES) - 1), seed=st.integers(0, 2 ** 16))
def test_everything_moves_with_the_pixels(chain, index, seed):
    tv.manual_seed(seed)
    _, target = SCENES[index]
    h, w = target["semantic"].shape
    image = coordinate_image(h, w)
    out_image, out = J.Compose([step(k, v) for k, v in chain])(image, target)
    oh, ow = out_image.shape[1:]
    assert out["semantic"].shape == (oh, ow) and out["masks"].shape[1:] == (oh, ow)
    rows = np.rint(out_image[0]).astype(int) - 1
    cols = np.rint(out_image[1]).astype(int) - 1
    came = rows >= 0                                            # pixels that came from the input
    assert ((cols >= 0) == came).all()
    r, c = rows[came], cols[came]
    # the class map and each surviving mask carry the input's values at the source pixel
    np.testing.assert_array_equal(out["semantic"][came], target["semantic"][r, c])
    assert (out["semantic"][~came] == 0).all() and not out["masks"][:, ~came].any()
    # masks are matched to input objects by label and pixel content
    src_id = np.zeros((h, w), int)
    for k, m in enumerate(target["masks"]):
        src_id[m] = k + 1
    moved_ids = src_id[r, c]
    for m, label, box in zip(out["masks"], out["labels"], out["boxes"]):
        ids = np.unique(moved_ids[m[came]])
        assert len(ids) == 1 and ids[0] > 0                        # one input object per output mask
        k = ids[0] - 1
        assert label == target["labels"][k]
        np.testing.assert_array_equal(m[came], moved_ids == k + 1)
        np.testing.assert_array_equal(box, mask_to_box(m))         # box corners = the moved mask's extent
    # an object is dropped only when none of its pixels arrived
    arrived = set(np.unique(moved_ids[moved_ids > 0]) - 1)
    assert len(out["labels"]) == len(arrived)


def test_boxes_without_masks_move_analytically():
    _, target = SCENES[0]
    boxes_only = {"boxes": target["boxes"], "labels": target["labels"]}
    image = coordinate_image(32, 32)
    _, flipped = J.hflip(image, boxes_only)
    expect = target["boxes"].copy()
    expect[:, [0, 2]] = 32 - target["boxes"][:, [2, 0]]
    np.testing.assert_array_equal(flipped["boxes"], expect)
    # resize by 2 doubles the boxes exactly; with masks the boxes agree
    _, big = J.Resize(64)(image, boxes_only)
    np.testing.assert_allclose(big["boxes"], 2 * target["boxes"])
    _, big_masks = J.Resize(64, interpolation="nearest")(image, target)
    np.testing.assert_allclose(big_masks["boxes"], 2 * target["boxes"])
    # rotation by 90 degrees about the centre: the enclosing box of the corners is exact
    _, rot = J.affine(image, boxes_only, 90.0, (0, 0), 1.0, (0.0, 0.0))
    _, rot_masks = J.affine(image, target, 90.0, (0, 0), 1.0, (0.0, 0.0))
    np.testing.assert_allclose(rot["boxes"], rot_masks["boxes"], atol=1e-9)


def test_copy_paste():
    (img_a, a), (img_b, b) = SCENES[1], SCENES[2]
    paste = np.arange(len(b["labels"]))
    out_img, out = J.copy_paste(img_a, a, img_b, b, paste)
    covered = b["masks"].any(axis=0)
    n_kept = len(out["labels"]) - len(b["labels"])
    # pasted objects own their pixels: their masks, labels and image pixels are the source's
    np.testing.assert_array_equal(out["masks"][n_kept:], b["masks"])
    np.testing.assert_array_equal(out["labels"][n_kept:], b["labels"])
    np.testing.assert_array_equal(out_img[:, covered], img_b[:, covered])
    np.testing.assert_array_equal(out_img[:, ~covered], img_a[:, ~covered])
    # the others shrink to what is not covered, and masks stay disjoint
    survivors = [m & ~covered for m in a["masks"] if (m & ~covered).any()]
    np.testing.assert_array_equal(out["masks"][:n_kept], np.array(survivors).reshape(-1, 32, 32))
    assert out["masks"].sum(axis=0).max() <= 1
    # boxes match masks; the class map agrees with masks and labels
    for m, box in zip(out["masks"], out["boxes"]):
        np.testing.assert_array_equal(box, mask_to_box(m))
    expect = np.zeros((32, 32), int)
    for m, label in zip(out["masks"], out["labels"]):
        expect[m] = label
    np.testing.assert_array_equal(out["semantic"], expect)


def test_copy_paste_drops_a_fully_covered_object_and_shrinks_a_partly_covered_one():
    h = w = 16
    image = np.zeros((3, h, w), np.float32)
    masks = np.zeros((2, h, w), bool)
    masks[0, 2:5, 2:5] = True               # will be covered completely
    masks[1, 8:14, 8:14] = True             # will lose its top-left corner
    target = {"masks": masks, "labels": np.array([1, 2]), "boxes": np.stack([mask_to_box(m) for m in masks])}
    src = np.zeros((1, h, w), bool)
    src[0, 1:10, 1:10] = True
    src_target = {"masks": src, "labels": np.array([3]), "boxes": mask_to_box(src[0])[None]}
    _, out = J.copy_paste(image, target, np.ones_like(image), src_target, [0])
    np.testing.assert_array_equal(out["labels"], [2, 3])
    assert out["masks"][0].sum() == 36 - 4 and out["boxes"][0].tolist() == [8, 8, 14, 14]
    # the box of the shrunk object still spans its remaining L shape; the pasted box is the source's
    np.testing.assert_array_equal(out["boxes"][1], [1, 1, 10, 10])


def test_simple_copy_paste_on_a_batch_is_seeded():
    images = [SCENES[i][0] for i in range(3)]
    targets = [SCENES[i][1] for i in range(3)]
    tv.manual_seed(3)
    a = J.SimpleCopyPaste()(images, targets)
    tv.manual_seed(3)
    b = J.SimpleCopyPaste()(images, targets)
    for ta, tb, t in zip(a[1], b[1], targets):
        np.testing.assert_array_equal(ta["masks"], tb["masks"])
        assert len(ta["labels"]) >= 1 and ta["masks"].sum(axis=0).max() <= 1


def test_bad_input():
    image, target = SCENES[0]
    with pytest.raises(ValueError, match=r"masks of shape \(\d+, 16, 16\) do not fit the image of shape \(3, 32, 32\)"):
        J.hflip(image, {**target, "masks": target["masks"][:, :16, :16]})
    with pytest.raises(ValueError, match=r"labels hold classes in \[\d+, 7\], outside \[0, num_classes=4\)"):
        J.CheckTarget(num_classes=4)(image, {**target, "labels": np.array([7] * len(target["labels"]))})
    with pytest.raises(ValueError, match="target has none of"):
        J.hflip(image, {})
    with pytest.raises(ValueError, match=r"box 0 = \[-3.0, .*\] is not inside the 32x32 image"):
        J.Resize(16)(image, {"boxes": np.array([[-3.0, 0, 5, 5]]), "labels": np.array([1])})
    with pytest.raises(ValueError, match="per-object entries disagree in length"):
        J.vflip(image, {**target, "labels": target["labels"][:-1]})
    with pytest.raises(ValueError, match=r"semantic of shape \(8, 8\) does not fit"):
        J.vflip(image, {**target, "semantic": np.zeros((8, 8), int)})
    with pytest.raises(ValueError, match="images of shapes"):
        J.copy_paste(image, target, image[:, :16, :16], {k: v for k, v in target.items() if k != "semantic"} |
                     {"masks": target["masks"][:, :16, :16], "boxes": np.zeros((len(target["labels"]), 4)) + [0, 0, 4, 4]},
                     [0])
    # an image without objects is fine and stays empty
    empty = {"boxes": np.zeros((0, 4), np.float32), "labels": np.zeros((0,), np.int64),
             "masks": np.zeros((0, 32, 32), bool)}
    _, out = J.Compose([J.RandomRotation(30), J.Resize(16)])(image, empty)
    assert out["boxes"].shape == (0, 4) and out["masks"].shape == (0, 16, 16)
