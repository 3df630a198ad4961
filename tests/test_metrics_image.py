"""PSNR and SSIM against scikit-image (the definition the literature's tables use) on the same
images, to 1e-6 in float64; SSIM's gradient against the same formula written in torch and by
finite differences (tv.gradcheck)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import tinyvision as tv
from tests.helpers import check_against_torch
from tinyvision.metrics import psnr, ssim
from tinyvision.metrics.image import gaussian_window


def pair(shape, scale=1.0, noise=0.1, seed=0):
    """A clean image in [0, scale] and a noisy copy, float64 (N, C, H, W)."""
    rng = np.random.default_rng(seed)
    clean = rng.random(shape)
    noisy = np.clip(clean + noise * rng.standard_normal(shape), 0, 1)
    return clean * scale, noisy * scale


def skimage_ssim(x, y, data_range, sigma=1.5):
    """The mean over images of scikit-image's SSIM (channels averaged, channel_axis=0)."""
    return np.mean([structural_similarity(a, b, gaussian_weights=True, sigma=sigma, use_sample_covariance=False,
                                          data_range=data_range, channel_axis=0) for a, b in zip(x, y)])


@pytest.mark.parametrize("shape,data_range", [((2, 1, 16, 19), 1.0), ((3, 3, 12, 30), 1.0), ((1, 3, 20, 20), 255.0)])
def test_psnr_and_ssim_equal_scikit_image(shape, data_range):
    x, y = pair(shape, scale=data_range)
    want_psnr = np.mean([peak_signal_noise_ratio(a, b, data_range=data_range) for a, b in zip(y, x)])
    np.testing.assert_allclose(psnr(tv.tensor(x), tv.tensor(y), data_range).numpy(), want_psnr, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ssim(tv.tensor(x), tv.tensor(y), data_range).numpy(), skimage_ssim(x, y, data_range),
                               rtol=0, atol=1e-6)


def test_ssim_other_sigma_and_per_image_values():
    """sigma 0.8: a 7 x 7 window (r = int(3.5 * 0.8 + 0.5) = 3), as scikit-image picks it."""
    x, y = pair((3, 1, 9, 14), noise=0.3)
    assert len(gaussian_window(0.8)) == 7
    got = ssim(tv.tensor(x), tv.tensor(y), sigma=0.8, reduction="none").numpy()
    want = [skimage_ssim(x[i:i + 1], y[i:i + 1], 1.0, sigma=0.8) for i in range(3)]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_float32_close_to_scikit_image():
    x, y = pair((2, 3, 16, 16))
    got = ssim(tv.tensor(x.astype(np.float32)), tv.tensor(y.astype(np.float32)))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got.numpy(), skimage_ssim(x, y, 1.0), rtol=0, atol=1e-5)
    want = np.mean([peak_signal_noise_ratio(a, b, data_range=1.0) for a, b in zip(y, x)])
    np.testing.assert_allclose(psnr(tv.tensor(x.astype(np.float32)), tv.tensor(y.astype(np.float32))).numpy(),
                               want, rtol=1e-5)


@pytest.mark.filterwarnings("ignore:divide by zero")  # log(0): PSNR of identical images is +inf
def test_identical_images():
    x, _ = pair((1, 1, 12, 12))
    assert float(ssim(tv.tensor(x), tv.tensor(x)).numpy()) == pytest.approx(1.0, abs=1e-12)
    assert np.isinf(psnr(tv.tensor(x), tv.tensor(x)).numpy())


def torch_ssim(x, y, data_range=1.0):
    """The same formula in torch (valid filtering = scikit-image's cropped map)."""
    n, c, h, w = x.shape
    g = torch.tensor(gaussian_window(1.5), dtype=x.dtype)
    win = (g[:, None] * g[None, :])[None, None]
    filt = lambda t: TF.conv2d(t.reshape(n * c, 1, *t.shape[2:]), win)  # noqa: E731
    mx, my = filt(x), filt(y)
    vx, vy, cxy = filt(x * x) - mx ** 2, filt(y * y) - my ** 2, filt(x * y) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return s.reshape(n, -1).mean(1).mean()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ssim_and_psnr_gradients_match_torch(dtype):
    x, y = pair((2, 2, 13, 12), noise=0.2)
    check_against_torch(lambda a, b: ssim(a, b), torch_ssim, [x.astype(dtype), y.astype(dtype)], scale=10)
    check_against_torch(lambda a, b: psnr(a, b), lambda a, b: (10 * torch.log10(1 / ((a - b) ** 2).mean((1, 2, 3)))).mean(),
                        [x.astype(dtype), y.astype(dtype)], scale=10)


def test_ssim_gradcheck():
    x, y = pair((1, 2, 11, 12), noise=0.2)
    assert tv.gradcheck(lambda a, b: ssim(a, b, data_range=1.0), [tv.tensor(x, requires_grad=True),
                                                                   tv.tensor(y, requires_grad=True)])
    assert tv.gradcheck(lambda a, b: psnr(a, b), [tv.tensor(x, requires_grad=True), tv.tensor(y, requires_grad=True)])


def test_bad_input_is_named():
    x = tv.tensor(np.zeros((1, 1, 12, 12)))
    with pytest.raises(ValueError, match=r"ssim: preds and target must be \(N, C, H, W\) of one shape, got "
                                         r"\(1, 1, 12, 12\) and \(1, 1, 12, 11\)"):
        ssim(x, tv.tensor(np.zeros((1, 1, 12, 11))))
    with pytest.raises(ValueError, match=r"ssim: images must be at least 11 x 11 \(the Gaussian window at "
                                         r"sigma=1.5\), got 10 x 12"):
        ssim(tv.tensor(np.zeros((1, 1, 10, 12))), tv.tensor(np.zeros((1, 1, 10, 12))))
    with pytest.raises(ValueError, match="psnr: data_range must be positive"):
        psnr(x, x, data_range=0)
    with pytest.raises(ValueError, match="reduction must be one of"):
        psnr(x, x, reduction="sum")
    with pytest.raises(TypeError, match="share one float dtype"):
        psnr(x, tv.tensor(np.zeros((1, 1, 12, 12), np.float32)))
