"""tinyvision.imaging: degradations against SciPy / torch / PIL on the same arrays, the noise's
statistics, the photo split, and the patch dataset's reproducibility."""
import numpy as np
import pytest
import scipy.ndimage
import torch
import torch.nn.functional as TF
from PIL import Image

import tinyvision as tv
from tests.helpers import check_against_torch
from tinyvision import imaging
from tinyvision.imaging import photos as photo_module


def image(shape=(2, 3, 12, 14), seed=0, dtype=np.float64):
    return np.random.default_rng(seed).random(shape).astype(dtype)


# ------------------------------------------------------------------------------------ noise
def test_gaussian_noise_is_sigma_over_255_and_seeded():
    x = np.full((1, 1, 256, 256), 0.5)
    y = imaging.gaussian_noise(x, 25, seed=3)
    assert isinstance(y, np.ndarray) and y.shape == x.shape
    np.testing.assert_array_equal(y, imaging.gaussian_noise(x, 25, seed=3))
    np.testing.assert_allclose(y - x, np.random.default_rng(3).standard_normal(x.shape) * 25 / 255)
    assert abs((y - x).std() * 255 - 25) < 0.5
    assert imaging.gaussian_noise(x, 25, seed=4)[0, 0, 0, 0] != y[0, 0, 0, 0]


def test_gaussian_noise_keeps_the_graph():
    x = tv.tensor(image((3, 5, 5)), requires_grad=True)
    y = imaging.gaussian_noise(x, 10, seed=0)
    assert y.shape == (3, 5, 5)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.ones((3, 5, 5)))


def test_poisson_noise_statistics():
    x = np.full((1, 1, 200, 200), 0.3)
    y = imaging.poisson_noise(x, peak=50, seed=1)
    assert abs(y.mean() - 0.3) < 0.005 and abs(y.var() - 0.3 / 50) < 0.0005
    np.testing.assert_array_equal(y, imaging.poisson_noise(x, peak=50, seed=1))
    assert np.allclose(y * 50, np.round(y * 50))  # whole photon counts


@pytest.mark.parametrize("call,message", [
    (lambda: imaging.gaussian_noise(np.zeros((1, 4, 4)), -1), r"gaussian_noise: sigma must be >= 0 \(on the 0-255 scale\), got -1"),
    (lambda: imaging.poisson_noise(np.zeros((1, 4, 4)), 0), r"poisson_noise: peak must be > 0"),
    (lambda: imaging.gaussian_noise(np.zeros((4, 4)), 5), r"gaussian_noise: image must be \(C, H, W\) or \(N, C, H, W\), got shape \(4, 4\)"),
    (lambda: imaging.blur(np.zeros((1, 4, 4)), np.ones((2, 3))), r"blur: kernel must be 2-D with odd sides, got shape \(2, 3\)"),
    (lambda: imaging.blur(np.zeros((1, 4, 4)), np.ones((15, 15))), r"blur: a 15 x 15 kernel needs an image larger than 7 x 7"),
    (lambda: imaging.downsample(np.zeros((1, 4, 4)), 1.5), r"downsample: scale must be a positive integer, got 1.5"),
    (lambda: imaging.jpeg(np.zeros((2, 4, 4)), 50), r"jpeg: needs 1 \(grey\) or 3 \(RGB\) channels, got 2"),
    (lambda: imaging.gaussian_kernel(4, 1.0), r"gaussian_kernel: size must be odd and positive, got 4"),
    (lambda: imaging.motion_kernel(9, 9, 0), r"motion_kernel: length must be in \[0, size - 1\] = \[0, 8\], got 9"),
])
def test_bad_arguments_are_named(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


# ------------------------------------------------------------------------------------- blur
def test_blur_is_scipy_convolution_with_mirrored_edges():
    """An asymmetric kernel, so that convolution (flipped) and correlation differ; SciPy's
    'mirror' is PyTorch's 'reflect' (dcb|abcd|cba)."""
    k = np.random.default_rng(5).random((3, 5))
    x = image()
    want = np.stack([[scipy.ndimage.convolve(ch, k, mode="mirror") for ch in img] for img in x])
    np.testing.assert_allclose(imaging.blur(x, k), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(imaging.blur(x[0], k), want[0], rtol=1e-12, atol=1e-12)  # (C, H, W) in, out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blur_matches_torch_forward_and_backward(dtype):
    k = imaging.motion_kernel(5, 3.0, 30.0)
    weight = torch.tensor(np.broadcast_to(k[::-1, ::-1], (3, 1, 5, 5)).copy(), dtype=getattr(torch, np.dtype(dtype).name))
    check_against_torch(lambda x: imaging.blur(x, k),
                        lambda x: TF.conv2d(TF.pad(x, (2, 2, 2, 2), mode="reflect"), weight, groups=3),
                        [image(dtype=dtype)])


def test_blur_gradcheck():
    k = imaging.gaussian_kernel(3, 0.8)
    assert tv.gradcheck(lambda x: imaging.blur(x, k), [tv.tensor(image((1, 2, 5, 6)), requires_grad=True)])


def test_kernels():
    g = imaging.gaussian_kernel(15, 2.0)
    assert g.shape == (15, 15) and g.sum() == pytest.approx(1) and g.argmax() == 7 * 15 + 7
    np.testing.assert_allclose(g, g.T)
    horizontal = imaging.motion_kernel(9, 6.0, 0.0)
    assert horizontal.sum() == pytest.approx(1)
    assert np.count_nonzero(horizontal.sum(1)) == 1 and np.count_nonzero(horizontal[4]) == 7  # columns 1..7
    np.testing.assert_allclose(imaging.motion_kernel(9, 6.0, 90.0), horizontal.T, atol=1e-12)
    diagonal = imaging.motion_kernel(9, 6.0, 45.0)
    np.testing.assert_allclose(diagonal, diagonal[::-1, ::-1], atol=1e-12)  # symmetric about the centre
    assert diagonal[2, 6] > 0 and diagonal[2, 2] == 0  # up and to the right


# ------------------------------------------------------------------------------ resolution
def test_downsample_is_torch_and_pil_bicubic_antialiased():
    x = image((1, 1, 24, 30), dtype=np.float32)
    y = imaging.downsample(x, 3)
    want = TF.interpolate(torch.tensor(x), size=(8, 10), mode="bicubic", antialias=True).numpy()
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)
    pil = np.asarray(Image.fromarray(x[0, 0], mode="F").resize((10, 8), Image.BICUBIC))
    np.testing.assert_allclose(y[0, 0], pil, atol=1e-5)
    assert imaging.downsample(image((1, 7, 9)), 2).shape == (1, 3, 4)  # floor(H / s)
    assert imaging.upsample(y, 3).shape == (1, 1, 24, 30)


def test_jpeg_round_trip():
    smooth = np.linspace(0, 1, 32)[None, None, :].repeat(32, 1)  # (1, 32, 32) ramp
    for q, bound in ((95, 0.01), (10, 0.05)):
        y = imaging.jpeg(smooth, q)
        assert y.shape == smooth.shape and np.allclose(y * 255, np.round(y * 255))
        assert np.abs(y - smooth).mean() < bound
    rgb = image((3, 16, 16))
    assert np.abs(imaging.jpeg(rgb, 5) - rgb).mean() > np.abs(imaging.jpeg(rgb, 95) - rgb).mean()


# ----------------------------------------------------------------------------------- photos
def test_photo_split_and_loading():
    import skimage.color
    import skimage.data

    assert not set(imaging.TRAIN_PHOTOS) & set(imaging.VAL_PHOTOS + imaging.TEST_PHOTOS)
    assert imaging.VAL_PHOTOS == ("moon",) and imaging.TEST_PHOTOS == ("camera",)
    camera = imaging.load_photo("camera")
    assert camera.shape == (1, 512, 512) and camera.dtype == np.float32
    np.testing.assert_allclose(camera[0], skimage.data.camera() / 255, atol=1e-7)
    chelsea = imaging.load_photo("chelsea")
    np.testing.assert_allclose(chelsea[0], skimage.color.rgb2gray(skimage.data.chelsea()), atol=1e-6)
    assert imaging.load_photo("chelsea", grey=False).shape == (3, 300, 451)
    assert imaging.load_photo("moon", grey=False).shape == (3, 512, 512)
    with pytest.raises(ValueError, match="unknown photo 'lena'"):
        imaging.load_photo("lena")
    assert photo_module.PHOTOS[-1] == "camera"


@pytest.mark.slow
def test_flower_is_scikit_learns_sample_image():
    """Read from scikit-learn's package folder without importing scikit-learn (slow to import)."""
    from sklearn.datasets import load_sample_image

    want = load_sample_image("flower.jpg").astype(np.float64) @ np.array([0.2125, 0.7154, 0.0721]) / 255
    np.testing.assert_allclose(imaging.load_photo("flower")[0], want, atol=1e-6)


# ---------------------------------------------------------------------------------- patches
def test_patch_dataset_is_seeded_per_epoch():
    photos = [image((1, 20, 12), seed=1), image((1, 10, 16), seed=2)]
    data = imaging.PatchDataset(photos, 8, lambda p, rng: imaging.gaussian_noise(p, 25, rng), length=10, seed=0)
    noisy, clean = data[3]
    assert noisy.shape == clean.shape == (1, 8, 8) and noisy.dtype == np.float32
    assert abs((noisy - clean).std() * 255 - 25) < 10
    np.testing.assert_array_equal(data[3][0], noisy)
    data.set_epoch(1)
    assert not np.array_equal(data[3][1], clean)
    # every patch is a crop of one photo, turned by one of the 8 symmetries
    crops = [imaging.dihedral(photo[:, t:t + 8, l:l + 8], k) for photo in photos
             for t in range(photo.shape[1] - 7) for l in range(photo.shape[2] - 7) for k in range(8)]
    for i in range(4):
        assert any(np.array_equal(c.astype(np.float32), data[i][1]) for c in crops)
    with pytest.raises(ValueError, match=r"patch_size 11 \(\+ 2 x margin 0\) exceeds photos of shape \[\(1, 10, 16\)\]"):
        imaging.PatchDataset(photos, 11, lambda p, rng: p, length=1)
    with pytest.raises(IndexError):
        data[10]


def test_degraded_images_are_fixed():
    photos = [image((1, 9, 9), seed=1)]
    a = imaging.DegradedImages(photos, lambda p, rng: imaging.gaussian_noise(p, 25, rng), seed=7)
    b = imaging.DegradedImages(photos, lambda p, rng: imaging.gaussian_noise(p, 25, rng), seed=7)
    np.testing.assert_array_equal(a[0][0], b[0][0])
    np.testing.assert_array_equal(a[0][1], photos[0])


def test_patch_margin_blurs_with_the_real_surroundings():
    """With margin = the kernel's radius, a training patch is exactly the crop of the blurred photo."""
    photo = image((1, 24, 26), seed=3)
    k = imaging.gaussian_kernel(5, 1.0)
    data = imaging.PatchDataset([photo], 8, lambda p, rng: imaging.blur(p, k), length=3, augment=False, margin=2)
    blurred = imaging.blur(photo, k)
    for i in range(3):
        degraded, clean = data[i]
        assert clean.shape == degraded.shape == (1, 8, 8)
        (top, left), = [(t, l) for t in range(17) for l in range(19)
                        if np.array_equal(photo[:, t:t + 8, l:l + 8].astype(np.float32), clean)]
        np.testing.assert_allclose(degraded, blurred[:, top:top + 8, left:left + 8], atol=1e-6)
