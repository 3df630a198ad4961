"""Image ops against torch ops on the same images, or against the formula written out here."""
import colorsys
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from PIL import Image, ImageOps

from tests.helpers import DTYPES, tol
from tinyvision.data import functional as F

rng = np.random.default_rng(0)


def image(c=3, h=9, w=11, dtype=np.float32):
    return rng.random((c, h, w)).astype(dtype)


def test_to_tensor():
    hwc = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    expect = torch.from_numpy(hwc).permute(2, 0, 1).float() / 255
    out = F.to_tensor(hwc)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expect.numpy(), **tol(np.float32))
    assert F.to_tensor(hwc[:, :, 0]).shape == (1, 4, 5)
    with pytest.raises(TypeError, match=r"expected a float \(C, H, W\) NumPy image.*ToTensor"):
        F.hflip(hwc)


@pytest.mark.parametrize("dtype", DTYPES)
def test_normalize(dtype):
    img = image(dtype=dtype)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    expect = (torch.tensor(img) - torch.tensor(mean, dtype=torch.float64).view(3, 1, 1).to(torch.tensor(img).dtype)) \
        / torch.tensor(std, dtype=torch.tensor(img).dtype).view(3, 1, 1)
    out = F.normalize(img, mean, std)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, expect.numpy(), **tol(dtype))
    with pytest.raises(ValueError, match="need 1 or 3 values, got 2"):
        F.normalize(img, [0, 0], [1, 1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("size", [(32, 32), (4, 5), (9, 20), (17, 3)])
def test_resize_matches_interpolate(dtype, mode, size):
    img = image(dtype=dtype)
    kw = dict(align_corners=False) if mode == "bilinear" else {}
    expect = TF.interpolate(torch.tensor(img)[None], size=size, mode=mode, **kw)[0].numpy()
    out = F.resize(img, size, mode)
    assert out.shape == (3,) + size and out.dtype == dtype
    np.testing.assert_allclose(out, expect, **tol(dtype, 10))   # a 2-tap sum per axis


def test_resize_int_matches_the_shorter_edge():
    assert F.resize(image(h=9, w=12), 6).shape == (3, 6, 8)
    assert F.resize(image(h=12, w=9), 6).shape == (3, 8, 6)


def test_flips_match_torch_flip():
    img = image()
    np.testing.assert_array_equal(F.hflip(img), torch.flip(torch.tensor(img), [2]).numpy())
    np.testing.assert_array_equal(F.vflip(img), torch.flip(torch.tensor(img), [1]).numpy())


@pytest.mark.parametrize("mode,torch_mode", [("constant", "constant"), ("edge", "replicate"), ("reflect", "reflect")])
def test_pad_matches_torch(mode, torch_mode):
    img = image()
    # torchvision (left, top, right, bottom) -> torch.nn.functional.pad (left, right, top, bottom)
    expect = TF.pad(torch.tensor(img)[None], (1, 3, 2, 4), mode=torch_mode)[0].numpy()
    np.testing.assert_array_equal(F.pad(img, (1, 2, 3, 4), padding_mode=mode), expect)
    assert F.pad(img, 2).shape == (3, 13, 15) and F.pad(img, (1, 2)).shape == (3, 13, 13)


def test_crop_and_center_crop():
    img = image(c=1, h=7, w=6)
    np.testing.assert_array_equal(F.crop(img, 1, 2, 3, 4), img[:, 1:4, 2:6])
    outside = F.crop(img, -1, 4, 3, 4)          # one row above, two columns right: zeros
    assert (outside[:, 0] == 0).all() and (outside[:, :, 2:] == 0).all()
    np.testing.assert_array_equal(outside[:, 1:, :2], img[:, 0:2, 4:6])
    # (7 - 4) / 2 = 1.5 rounds (half to even) to 2; (6 - 3) / 2 = 1.5 -> 2
    np.testing.assert_array_equal(F.center_crop(img, (4, 3)), img[:, 2:6, 2:5])
    # larger than the image: padded by (9 - 7) // 2 = 1 on top, (8 - 6) // 2 = 1 on the left
    big = F.center_crop(img, (9, 8))
    np.testing.assert_array_equal(big[:, 1:8, 1:7], img)
    assert big.sum() == pytest.approx(img.sum(), rel=1e-6)


def gray(img):
    return 0.2989 * img[0] + 0.587 * img[1] + 0.114 * img[2]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("f", [0.0, 0.4, 1.0, 1.7])
def test_colour_adjustments_follow_torchvision_formulas(dtype, f):
    img = image(dtype=dtype)
    g = gray(img.astype(np.float64))
    for out, expect in [
        (F.adjust_brightness(img, f), np.clip(f * img, 0, 1)),                            # blend with black
        (F.adjust_contrast(img, f), np.clip(f * img + (1 - f) * g.mean(), 0, 1)),        # with mean gray
        (F.adjust_saturation(img, f), np.clip(f * img + (1 - f) * g[None], 0, 1)),       # with gray image
    ]:
        assert out.dtype == dtype and out.shape == img.shape
        np.testing.assert_allclose(out, expect, **tol(dtype, 10))
    one = image(c=1, dtype=dtype)
    np.testing.assert_array_equal(F.adjust_saturation(one, f), one)
    np.testing.assert_allclose(F.adjust_contrast(one, f), np.clip(f * one + (1 - f) * one.mean(), 0, 1),
                               **tol(dtype, 10))


def hue_test_image(dtype):
    """Random colours plus the edge cases: gray (zero chroma), black, and ties for the maximum
    (R = G, G = B, R = B), which decide the hue sector."""
    img = image(h=6, w=7, dtype=dtype)
    img[:, 0, 0], img[:, 0, 1], img[:, 0, 2] = 0.4, 0.0, 1.0
    img[:, 1, 0], img[:, 1, 1], img[:, 1, 2] = (0.8, 0.8, 0.2), (0.1, 0.7, 0.7), (0.6, 0.3, 0.6)
    return img


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("f", [-0.5, -0.23, 0.0, 0.31, 0.5])
def test_adjust_hue_matches_colorsys(dtype, f):
    """The standard library's colorsys, pixel by pixel, is the oracle for RGB <-> HSV."""
    img = hue_test_image(dtype)
    hsv = np.array([colorsys.rgb_to_hsv(*px) for px in img.reshape(3, -1).T.astype(np.float64)])
    np.testing.assert_allclose(F.rgb_to_hsv(img).reshape(3, -1).T, hsv, **tol(dtype))
    expect = np.array([colorsys.hsv_to_rgb((h + f) % 1.0, s_, v) for h, s_, v in hsv]).T.reshape(img.shape)
    out = F.adjust_hue(img, f)
    assert out.dtype == dtype and out.shape == img.shape
    np.testing.assert_allclose(out, expect, **tol(dtype))
    one = image(c=1, dtype=dtype)
    np.testing.assert_array_equal(F.adjust_hue(one, f), one)
    with pytest.raises(ValueError, match=r"hue_factor must be in \[-0.5, 0.5\], got 0.6"):
        F.adjust_hue(img, 0.6)


@pytest.mark.parametrize("f", [0.0, 0.5, 2.0])
def test_sharpness_blends_with_a_3x3_smoothing(f):
    img = image(dtype=np.float64)
    kernel = torch.tensor([[1., 1, 1], [1, 5, 1], [1, 1, 1]], dtype=torch.float64) / 13
    smooth = TF.conv2d(torch.tensor(img)[:, None], kernel[None, None])[:, 0].numpy()
    degenerate = img.copy()
    degenerate[:, 1:-1, 1:-1] = smooth
    np.testing.assert_allclose(F.adjust_sharpness(img, f), np.clip(f * img + (1 - f) * degenerate, 0, 1),
                               **tol(np.float64))


def test_solarize_posterize_autocontrast():
    img = image()
    np.testing.assert_array_equal(F.solarize(img, 0.6), np.where(img >= 0.6, 1 - img, img))
    np.testing.assert_allclose(F.posterize(img, 3), np.floor(img * 8) / 8)
    flat = img.copy()
    flat[1] = 0.3                                          # a constant channel is left alone
    out = F.autocontrast(flat)
    for c in (0, 2):
        stretched = (flat[c] - flat[c].min()) / (flat[c].max() - flat[c].min())
        np.testing.assert_allclose(out[c], stretched, **tol(np.float32))
    np.testing.assert_array_equal(out[1], flat[1])


def test_equalize_matches_pillow():
    """Pillow's ImageOps.equalize is the algorithm torchvision copies (per channel, uint8)."""
    u8 = np.minimum(rng.gamma(2.0, 30.0, (20, 24, 3)), 255).astype(np.uint8)    # a skewed histogram
    expect = np.asarray(ImageOps.equalize(Image.fromarray(u8))).transpose(2, 0, 1) / 255.0
    out = F.equalize(u8.transpose(2, 0, 1).astype(np.float32) / 255)
    np.testing.assert_allclose(out, expect, atol=1e-6)


# ------------------------------------------------------------------ affine
def forward_matrix(center, angle, translate, scale, shear):
    """The forward map as torchvision documents it, built from elementary 3x3 matrices:
    T(translate) C R(angle) S(scale) SHy(sy) SHx(sx) C^-1."""
    a, sx, sy = (math.radians(v) for v in (angle, *shear))
    T = np.array([[1, 0, translate[0]], [0, 1, translate[1]], [0, 0, 1.0]])
    C = np.array([[1, 0, center[0]], [0, 1, center[1]], [0, 0, 1.0]])
    R = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    S = np.diag([scale, scale, 1.0])
    SHx = np.array([[1, -math.tan(sx), 0], [0, 1, 0], [0, 0, 1.0]])
    SHy = np.array([[1, 0, 0], [-math.tan(sy), 1, 0], [0, 0, 1.0]])
    return T @ C @ R @ S @ SHy @ SHx @ np.linalg.inv(C)


def torch_affine(img, matrix, mode, fill):
    """Sample img at inverse(matrix) of each output pixel with torch's affine_grid/grid_sample.
    Coordinates are centred on the image (pixel j at x = j + 0.5 - w/2); theta maps normalised
    output coordinates x / (w/2) to normalised input coordinates."""
    c, h, w = img.shape
    inv = np.linalg.inv(matrix)[:2]
    D = np.diag([w / 2, h / 2])
    theta = np.concatenate([np.linalg.inv(D) @ inv[:, :2] @ D, (np.linalg.inv(D) @ inv[:, 2])[:, None]], axis=1)
    grid = TF.affine_grid(torch.tensor(theta)[None], (1, c, h, w), align_corners=False)
    x = torch.tensor(img, dtype=torch.float64)[None]
    out = TF.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)[0]
    if fill is None:
        return out.numpy()
    mask = TF.grid_sample(torch.ones_like(x[:, :1]), grid, mode=mode, padding_mode="zeros", align_corners=False)[0]
    if mode == "nearest":
        mask = (mask >= 0.5).double()
    return (out * mask + (1 - mask) * fill).numpy()


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("params", [
    dict(angle=30.0, translate=(2, -1), scale=1.2, shear=(0.0, 0.0)),
    dict(angle=-17.0, translate=(0, 3), scale=0.8, shear=(12.0, -7.0)),
    dict(angle=0.0, translate=(0, 0), scale=1.0, shear=(20.0, 0.0), center=(0, 0)),
    dict(angle=95.0, translate=(-3, 0), scale=1.0, shear=(0.0, 0.0), center=(2, 7)),
])
@pytest.mark.parametrize("fill", [None, 0.25])
def test_affine_matches_composed_matrix_and_grid_sample(mode, params, fill):
    img = image(h=12, w=15, dtype=np.float64)
    center = params.get("center")
    c_centred = (0.0, 0.0) if center is None else (center[0] - 15 / 2, center[1] - 12 / 2)
    m = forward_matrix(c_centred, params["angle"], params["translate"], params["scale"], params["shear"])
    expect = torch_affine(img, m, mode, fill)
    out = F.affine(img, params["angle"], params["translate"], params["scale"], params["shear"],
                   interpolation=mode, fill=fill, center=center)
    np.testing.assert_allclose(out, expect, **tol(np.float64, 1e3))   # sampling positions differ by rounding


def test_rotate_90_is_rot90_and_float32_keeps_dtype():
    img = image(h=8, w=8)
    # counter-clockwise on screen = np.rot90 over (H, W)
    np.testing.assert_array_equal(F.rotate(img, 90.0), np.rot90(img, 1, axes=(1, 2)))
    np.testing.assert_allclose(F.rotate(img, 90.0, "bilinear"), np.rot90(img, 1, axes=(1, 2)), atol=1e-6)
    assert F.affine(img, 10, (1, 1), 1.1, 5, fill=0).dtype == np.float32
