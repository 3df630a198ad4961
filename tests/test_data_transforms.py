"""Transform classes: shapes and dtypes, seeded randomness, parameter ranges, torchvision's
tables; and 18 image functions against the real torchvision's outputs (fixtures)."""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinyvision as tv
from tests.helpers import tol
from tinyvision.data import functional as F, transforms as T

rng = np.random.default_rng(0)


def image(c=3, h=12, w=14, dtype=np.float32):
    return rng.random((c, h, w)).astype(dtype)


ALL = [
    (T.Normalize([0.5], [0.25]), None),
    (T.Resize((7, 9)), (7, 9)),
    (T.CenterCrop(8), (8, 8)),
    (T.RandomCrop(10, padding=2), (10, 10)),
    (T.RandomResizedCrop(6), (6, 6)),
    (T.RandomHorizontalFlip(), None),
    (T.RandomVerticalFlip(), None),
    (T.ColorJitter(0.4, 0.4, 0.4, 0.1), None),
    (T.RandomRotation(30), None),
    (T.RandomAffine(20, translate=(0.1, 0.2), scale=(0.8, 1.2), shear=(-5, 5, -3, 3), interpolation="bilinear"), None),
    (T.RandAugment(), None),
    (T.Pad((1, 2)), None),
]


@settings(max_examples=8)
@given(c=st.sampled_from([1, 3]), h=st.integers(10, 20), w=st.integers(10, 20), seed=st.integers(0, 100),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_shapes_dtypes_and_seeded(c, h, w, seed, dtype):
    img = image(c, h, w, dtype)
    for t, size in ALL:
        tv.manual_seed(seed)
        out = t(img)
        tv.manual_seed(seed)
        again = t(img)
        expect = (c,) + size if size else (c, h + 4, w + 2) if isinstance(t, T.Pad) else img.shape
        assert out.shape == expect and out.dtype == dtype, (t, out.shape, out.dtype)
        np.testing.assert_array_equal(out, again, err_msg=repr(t))
        assert np.isfinite(out).all()


def test_compose_totensor_normalize():
    hwc = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    out = T.Compose([T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)])(hwc)
    np.testing.assert_allclose(out, (hwc.transpose(2, 0, 1) / 255.0 - 0.5) / 0.5, **tol(np.float32))
    assert "ToTensor" in repr(T.Compose([T.ToTensor()]))


def test_horizontal_flip_probability():
    img = image()
    assert np.array_equal(T.RandomHorizontalFlip(1.0)(img), img[:, :, ::-1])
    assert T.RandomHorizontalFlip(0.0)(img) is img
    tv.manual_seed(0)
    flips = sum(not np.array_equal(T.RandomHorizontalFlip(0.3)(img), img) for _ in range(2000))
    assert abs(flips / 2000 - 0.3) < 0.04   # 4 binomial standard deviations


def test_random_crop_is_a_window_of_the_padded_image_and_reaches_every_offset():
    img = image(c=1, h=6, w=6)
    padded = np.pad(img, ((0, 0), (2, 2), (2, 2)))
    tv.manual_seed(0)
    seen = set()
    for _ in range(400):
        out = T.RandomCrop(6, padding=2)(img)
        hits = [(i, j) for i in range(5) for j in range(5) if np.array_equal(padded[:, i:i + 6, j:j + 6], out)]
        assert hits
        seen.add(hits[0])
    assert seen == set(itertools.product(range(5), range(5)))
    with pytest.raises(ValueError, match=r"crop size \(8, 8\) is larger than the \(padded\) image \(6, 6\)"):
        T.RandomCrop(8)(img)
    assert T.RandomCrop(8, pad_if_needed=True)(img).shape == (1, 8, 8)


def test_random_resized_crop_params_respect_scale_and_ratio():
    img = image(h=40, w=50)
    t = T.RandomResizedCrop(8, scale=(0.2, 0.6), ratio=(0.5, 2.0))
    tv.manual_seed(3)
    for _ in range(300):
        top, left, h, w = t.get_params(img)
        assert 0 <= top and top + h <= 40 and 0 <= left and left + w <= 50
        # w, h are rounded to ints, so area and ratio may stray by the rounding
        assert 0.2 * 2000 - (h + w) <= h * w <= 0.6 * 2000 + (h + w)
        assert 0.5 * (h - 1) / (h + 1) <= w / h <= 2.0 * (w + 1) / (w - 1)
    # a wide window (ratio 2-3, 90% of the area) never fits a 50x5 image: the central fallback
    # keeps the width 5 and takes h = round(5 / 2) = 2 (half to even), top = (50 - 2) // 2 = 24
    tall = image(h=50, w=5)
    assert T.RandomResizedCrop(4, scale=(0.9, 1.0), ratio=(2.0, 3.0)).get_params(tall) == (24, 0, 2, 5)


def test_color_jitter_at_fixed_factors_is_one_order_of_the_three_blends():
    img = image()
    fb, fc, fs = 1.3, 0.6, 1.8

    def gray(x):
        return 0.2989 * x[0] + 0.587 * x[1] + 0.114 * x[2]

    ops = [lambda x: np.clip(fb * x, 0, 1),
           lambda x: np.clip(fc * x + (1 - fc) * gray(x).mean(), 0, 1),
           lambda x: np.clip(fs * x + (1 - fs) * gray(x)[None], 0, 1)]
    orders = {}
    for perm in itertools.permutations(range(3)):
        x = img.astype(np.float64)
        for k in perm:
            x = ops[k](x)
        orders[perm] = x
    t = T.ColorJitter(brightness=(fb, fb), contrast=(fc, fc), saturation=(fs, fs))
    tv.manual_seed(0)
    used = set()
    for _ in range(60):
        out = t(img)
        match = [p for p, x in orders.items() if np.allclose(out, x, **tol(np.float32, 10))]
        assert match
        used.add(match[0])
    assert len(used) == 6   # a random order each call
    lo, hi = T.ColorJitter(brightness=0.5).ranges["brightness"]
    assert (lo, hi) == (0.5, 1.5) and T.ColorJitter(brightness=2).ranges["brightness"][0] == 0.0
    assert T.ColorJitter(hue=0.2).ranges["hue"] == (-0.2, 0.2)


def test_color_jitter_hue_turns_the_hue_only():
    img = image()
    np.testing.assert_allclose(T.ColorJitter(hue=(0.3, 0.3))(img), F.adjust_hue(img, 0.3), **tol(np.float32))
    tv.manual_seed(0)
    h0, s0, v0 = F.rgb_to_hsv(img.astype(np.float64))
    turns = set()
    for _ in range(5):
        h, s, v = F.rgb_to_hsv(T.ColorJitter(hue=0.25)(img).astype(np.float64))
        np.testing.assert_allclose((s, v), (s0, v0), atol=1e-5)   # saturation and value kept
        turn = (h - h0 + 0.5) % 1.0 - 0.5                           # one turn for every pixel
        assert np.ptp(turn) < 1e-4 and abs(turn[0, 0]) <= 0.25 + 1e-5
        turns.add(round(float(turn[0, 0]), 4))
    assert len(turns) == 5
    with pytest.raises(ValueError, match=r"ColorJitter hue: must lie within \[-0.5, 0.5\], got 0.7"):
        T.ColorJitter(hue=0.7)


def test_random_rotation_and_affine_params():
    img = image(h=10, w=10)
    np.testing.assert_array_equal(T.RandomRotation((90, 90))(img), np.rot90(img, 1, axes=(1, 2)))
    t = T.RandomAffine(degrees=15, translate=(0.1, 0.3), scale=(0.9, 1.1), shear=(2, 4, -6, -5))
    tv.manual_seed(0)
    for _ in range(200):
        angle, (tx, ty), scale, (sx, sy) = t.get_params(20, 40)
        assert -15 <= angle <= 15 and abs(tx) <= 4 and abs(ty) <= 6 and 0.9 <= scale <= 1.1
        assert 2 <= sx <= 4 and -6 <= sy <= -5 and isinstance(tx, int)
    with pytest.raises(ValueError, match="translate values must be in"):
        T.RandomAffine(0, translate=(2, 0))


def test_randaugment_table_at_magnitude_9():
    """torchvision's table: bins linspace(0, max, 31); bin 9 is 9/30 of the maximum."""
    ops = T.RandAugment(magnitude=9).ops(height=20, width=40)
    assert len(ops) == 14
    expect = {"ShearX": 0.09, "ShearY": 0.09, "TranslateX": 150 / 331 * 40 * 0.3, "TranslateY": 150 / 331 * 20 * 0.3,
              "Rotate": 9.0, "Brightness": 0.27, "Color": 0.27, "Contrast": 0.27, "Sharpness": 0.27,
              "Posterize": 7.0, "Solarize": 0.7, "Identity": 0.0, "AutoContrast": 0.0, "Equalize": 0.0}
    for name, m in expect.items():
        assert ops[name][1] == pytest.approx(m, abs=1e-12), name
    assert {n for n, (_, _, signed) in ops.items() if signed} == {
        "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast", "Sharpness"}
    img = image(h=20, w=40)
    # ShearX by m: output pixel (x, y) reads the input at (x + m y, y), y from the top edge:
    # row 4 (y = 4.5) reads 2.25 -> (nearest) 2 columns further right
    shear = ops["ShearX"][0](img, 0.5)
    np.testing.assert_array_equal(shear[:, 0], img[:, 0])
    np.testing.assert_array_equal(shear[:, 4, :38], img[:, 4, 2:])
    np.testing.assert_array_equal(ops["TranslateX"][0](img, 3.7)[:, :, 3:], img[:, :, :-3])   # int(3.7) = 3 px
    for name, (fn, m, _) in ops.items():
        assert fn(img, m).shape == img.shape, name


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"magnitude must be in \[0, 31\)"):
        T.RandAugment(magnitude=31)
    with pytest.raises(ValueError, match="min must not exceed max"):
        T.ColorJitter(brightness=(1.5, 0.5))
    with pytest.raises(TypeError, match=r"RandomAffine: expected a float \(C, H, W\)"):
        T.RandomAffine(10)(np.zeros((4, 4)))


# ------------------------------------------------------------------ torchvision, through fixtures
# tests/fixtures/make_transform_fixtures.py ran the REAL torchvision (transforms.v2.functional)
# on one seeded image and stored its outputs; `make test` needs no torchvision to compare.
TORCHVISION_TWINS = {
    "resize_bilinear_9x21": lambda x: F.resize(x, (9, 21)),
    "resize_nearest_7": lambda x: F.resize(x, 7, "nearest"),
    "center_crop_8x20": lambda x: F.center_crop(x, (8, 20)),
    "center_crop_16x9": lambda x: F.center_crop(x, (16, 9)),
    "brightness_1.4": lambda x: F.adjust_brightness(x, 1.4),
    "contrast_0.6": lambda x: F.adjust_contrast(x, 0.6),
    "saturation_1.7": lambda x: F.adjust_saturation(x, 1.7),
    "sharpness_1.9": lambda x: F.adjust_sharpness(x, 1.9),
    "hue_0.27": lambda x: F.adjust_hue(x, 0.27),
    "hue_-0.45": lambda x: F.adjust_hue(x, -0.45),
    "posterize_3": lambda x: F.posterize(x, 3),
    "solarize_0.4": lambda x: F.solarize(x, 0.4),
    "autocontrast": lambda x: F.autocontrast(x),
    "equalize": lambda x: F.equalize(x),
    "rotate_33_bilinear": lambda x: F.rotate(x, 33.0, "bilinear"),
    "rotate_-21_fill0": lambda x: F.rotate(x, -21.0, fill=0),
    "shear_x_16.7": lambda x: F.affine(x, 0.0, (0, 0), 1.0, (16.7, 0.0), center=(0, 0)),  # RandAugment's ShearX
    "affine_bilinear_fill": lambda x: F.affine(x, 12.0, (2, -1), 1.1, (5.0, -3.0), "bilinear", fill=[0.2] * 3),
}


def _torchvision_fixture():
    import json
    from pathlib import Path

    with np.load(Path(__file__).parent / "fixtures" / "transforms.npz", allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    return json.loads(str(arrays.pop("meta"))), arrays


def test_the_fixture_covers_every_twin():
    meta, _ = _torchvision_fixture()
    assert meta["cases"] == list(TORCHVISION_TWINS)


@pytest.mark.parametrize("name", list(TORCHVISION_TWINS))
def test_against_torchvision(name):
    _, arrays = _torchvision_fixture()
    ours = TORCHVISION_TWINS[name](arrays["input"])
    np.testing.assert_allclose(ours, arrays[f"out_{name}"], rtol=1e-4, atol=1e-5, err_msg=name)
