"""Image-quality metrics on (N, C, H, W) batches: PSNR and SSIM, each the mean over the images of
the per-image value, equal to scikit-image's ``peak_signal_noise_ratio`` and
``structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=R, channel_axis=0)`` (tested to 1e-6). Both are built from differentiable ops, so
``1 - ssim`` and ``-psnr`` can be training losses.

PSNR (peak signal-to-noise ratio, in dB) of an image x against the reference y, values in a
range of width R:

    PSNR = 10 log10(R^2 / MSE),   MSE = mean over C, H, W of (x - y)^2

SSIM (structural similarity; Wang, Bovik, Sheikh & Simoncelli 2004) compares local means,
variances and covariance under a Gaussian window w (sigma = 1.5, truncated at 3.5 sigma: an
11 x 11 window), per channel:

    mu_x = w * x,   s_xx = w * x^2 - mu_x^2,   s_xy = w * (x y) - mu_x mu_y   (* = filtering)
    SSIM map = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_xx + s_yy + C2))
    C1 = (0.01 R)^2,  C2 = (0.03 R)^2

and SSIM is the map's mean over the channels and the positions at least 5 pixels (the window's
radius) from the border. scikit-image filters the whole image with mirrored edges and then
drops that border; a window centred on a kept position lies inside the image, so filtering
without padding ('valid') gives exactly the kept positions and the mirrored edges never matter.
"""
from __future__ import annotations

import math

import numpy as np

import tinyvision as tv
import tinyvision.nn.functional as F
from tinyvision.autograd.tensor import Tensor

_REDUCTIONS = ("mean", "none")


def _as_tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else tv.tensor(np.asarray(x))


def _check_pair(op: str, preds, target, data_range: float, reduction: str) -> tuple[Tensor, Tensor]:
    preds, target = _as_tensor(preds), _as_tensor(target)
    if preds.ndim != 4 or preds.shape != target.shape:
        raise ValueError(f"{op}: preds and target must be (N, C, H, W) of one shape, got {preds.shape} "
                         f"and {target.shape}")
    if np.dtype(preds.dtype).kind != "f" or preds.dtype != target.dtype:
        raise TypeError(f"{op}: preds and target must share one float dtype, got {preds.dtype} and {target.dtype}")
    if not data_range > 0:
        raise ValueError(f"{op}: data_range must be positive (the width of the value range, e.g. 1.0 "
                         f"or 255), got {data_range}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return preds, target


def _reduce(per_image: Tensor, reduction: str) -> Tensor:
    return per_image.mean() if reduction == "mean" else per_image


def psnr(preds, target, data_range: float = 1.0, reduction: str = "mean") -> Tensor:
    """Peak signal-to-noise ratio in dB of ``preds`` against ``target``, both (N, C, H, W).

    Per image 10 log10(data_range^2 / MSE); ``reduction='mean'`` (default) averages over the N
    images (a scalar), ``'none'`` returns (N,). Identical images give +inf.
    """
    preds, target = _check_pair("psnr", preds, target, data_range, reduction)
    mse = ((preds - target) ** 2).mean(dim=(1, 2, 3))  # (N,)
    # 10 log10(R^2 / mse) = (10 / ln 10) (2 ln R - ln mse)
    per_image = (2 * math.log(data_range) - tv.log(mse)) * (10 / math.log(10))
    return _reduce(per_image, reduction)


def gaussian_window(sigma: float = 1.5, truncate: float = 3.5, dtype=np.float64) -> np.ndarray:
    """The normalised 1-D Gaussian exp(-k^2 / (2 sigma^2)), k = -r..r with r = int(truncate sigma
    + 0.5): SciPy's ``gaussian_filter`` taps, which scikit-image's SSIM uses (r = 5 at sigma 1.5)."""
    radius = int(truncate * sigma + 0.5)
    k = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * k * k / sigma**2)
    return (w / w.sum()).astype(dtype)


def _filter_valid(x: Tensor, window: np.ndarray) -> Tensor:
    """Separable Gaussian filtering of every channel of (B, K, H, W), no padding:
    (B, K, H - 2r, W - 2r) (a depthwise convolution along H, then along W)."""
    k, n = x.shape[1], len(window)
    along_h = tv.tensor(np.broadcast_to(window.reshape(1, 1, n, 1), (k, 1, n, 1)).copy())
    along_w = tv.tensor(np.broadcast_to(window.reshape(1, 1, 1, n), (k, 1, 1, n)).copy())
    return F.conv2d(F.conv2d(x, along_h, groups=k), along_w, groups=k)


def ssim(preds, target, data_range: float = 1.0, sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03,
         reduction: str = "mean", return_full_image: bool = False):
    """Structural similarity of ``preds`` and ``target``, both (N, C, H, W) with H, W >= the
    window's size (11 at sigma 1.5); see the module docstring for the formula.

    Returns the mean over the images (``reduction='mean'``, a scalar Tensor) or (N,) with
    ``'none'``; with ``return_full_image=True`` also the SSIM map (N, C, H - 10, W - 10) of the
    positions averaged. Differentiable in both arguments.
    """
    preds, target = _check_pair("ssim", preds, target, data_range, reduction)
    if not sigma > 0:
        raise ValueError(f"ssim: sigma must be positive, got {sigma}")
    window = gaussian_window(sigma, dtype=np.dtype(preds.dtype).type)
    n, c, h, w = preds.shape
    if min(h, w) < len(window):
        raise ValueError(f"ssim: images must be at least {len(window)} x {len(window)} (the Gaussian "
                         f"window at sigma={sigma}), got {h} x {w}")
    # the five local statistics of every channel in one filtering pass: (N C, 5, H', W')
    x = preds.reshape(n * c, 1, h, w)
    y = target.reshape(n * c, 1, h, w)
    stats = _filter_valid(tv.cat([x, y, x * x, y * y, x * y], dim=1), window)
    mu_x, mu_y, e_xx, e_yy, e_xy = (stats[:, i] for i in range(5))
    var_x = e_xx - mu_x * mu_x
    var_y = e_yy - mu_y * mu_y
    cov_xy = e_xy - mu_x * mu_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    luminance_contrast = (2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)
    normaliser = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    ssim_map = (luminance_contrast / normaliser).reshape(n, c, h - len(window) + 1, w - len(window) + 1)
    value = _reduce(ssim_map.mean(dim=(1, 2, 3)), reduction)
    return (value, ssim_map) if return_full_image else value
