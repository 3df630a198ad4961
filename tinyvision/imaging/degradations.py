"""The degradation model y = A(x) + n of image restoration, as functions on images.

    noise         y = x + n,  n ~ N(0, (sigma / 255)^2)         (sigma quoted on the 0-255 scale)
                  y = Poisson(peak x) / peak                    (photon counts; peak = photons at white)
    blur          y = k * x                                     (a 2-D convolution, reflect-padded)
    downsampling  y = bicubic-antialiased resize of x to 1/s    (PyTorch's/PIL's resize)
    JPEG          y = decode(encode(x, quality))                (Pillow)

Every function takes an image (C, H, W) or a batch (N, C, H, W), as a Tensor or a NumPy array
with values in [0, 1], and returns the same kind; the random ones take ``seed`` (an int or a
``numpy.random.Generator``), so that a data pipeline draws reproducible degradations. Noise and
blur keep the autograd graph of a Tensor input (they are differentiable in x); JPEG does not.
"""
from __future__ import annotations

import io
import math
from typing import Any

import numpy as np

import tinyvision as tv
import tinyvision.nn.functional as F
from tinyvision.autograd.tensor import Tensor

Seed = int | np.random.Generator | None


def as_generator(seed: Seed) -> np.random.Generator:
    """A Generator from an int seed (or None: fresh entropy); a Generator passes through."""
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _batch(op: str, image: Any) -> tuple[Tensor, bool, bool]:
    """(N, C, H, W) Tensor, whether the input was an array, whether it had no batch axis."""
    is_array = not isinstance(image, Tensor)
    x = tv.tensor(np.asarray(image)) if is_array else image
    if x.ndim not in (3, 4):
        raise ValueError(f"{op}: image must be (C, H, W) or (N, C, H, W), got shape {x.shape}")
    if np.dtype(x.dtype).kind != "f":
        raise TypeError(f"{op}: image must be float with values in [0, 1], got dtype {x.dtype}")
    single = x.ndim == 3
    return (x.reshape(1, *x.shape) if single else x), is_array, single


def _unbatch(y: Tensor, is_array: bool, single: bool) -> Any:
    y = y.reshape(*y.shape[1:]) if single else y
    return y.numpy() if is_array else y


# ----------------------------------------------------------------------------------- noise
def gaussian_noise(image: Any, sigma: float, seed: Seed = None) -> Any:
    """y = x + (sigma / 255) n with n ~ N(0, 1) per pixel: additive white Gaussian noise with
    the standard deviation quoted on the 0-255 scale (sigma = 25 is the literature's 25/255 on
    [0, 1] images). No clipping, as in the denoising benchmarks."""
    if not sigma >= 0:
        raise ValueError(f"gaussian_noise: sigma must be >= 0 (on the 0-255 scale), got {sigma}")
    x, is_array, single = _batch("gaussian_noise", image)
    n = as_generator(seed).standard_normal(x.shape) * (sigma / 255)
    return _unbatch(x + tv.tensor(n.astype(x.dtype)), is_array, single)


def poisson_noise(image: Any, peak: float, seed: Seed = None) -> Any:
    """y = Poisson(peak x) / peak: shot noise of a sensor that counts ``peak`` photons at white
    (its variance x / peak grows with brightness; small peaks are dark, noisy images). Values
    below 0 count as 0. Not differentiable (a fresh array)."""
    if not peak > 0:
        raise ValueError(f"poisson_noise: peak must be > 0 (photons at white), got {peak}")
    x, is_array, single = _batch("poisson_noise", image)
    counts = as_generator(seed).poisson(np.clip(x.numpy(), 0, None) * peak)
    return _unbatch(tv.tensor((counts / peak).astype(x.dtype)), is_array, single)


# ------------------------------------------------------------------------------------ blur
def gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    """(size, size) samples of exp(-(i^2 + j^2) / (2 sigma^2)) around the centre, summing to 1."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"gaussian_kernel: size must be odd and positive, got {size}")
    if not sigma > 0:
        raise ValueError(f"gaussian_kernel: sigma must be > 0, got {sigma}")
    r = np.arange(size) - size // 2
    g = np.exp(-0.5 * (r / sigma) ** 2)
    k = np.outer(g, g)
    return k / k.sum()


def motion_kernel(size: int, length: float, angle: float) -> np.ndarray:
    """(size, size) kernel of a straight camera shake: a segment of ``length`` pixels through the
    centre at ``angle`` degrees (counter-clockwise from the x axis), drawn by splatting densely
    spaced points on it bilinearly onto the grid, normalised to sum to 1."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"motion_kernel: size must be odd and positive, got {size}")
    if not 0 <= length <= size - 1:
        raise ValueError(f"motion_kernel: length must be in [0, size - 1] = [0, {size - 1}], got {length}")
    t = np.linspace(-length / 2, length / 2, max(int(8 * length), 1) + 1)
    theta = math.radians(angle)
    cols = size // 2 + t * math.cos(theta)
    rows = size // 2 - t * math.sin(theta)  # rows grow downwards
    k = np.zeros((size, size))
    r0, c0 = np.floor(rows).astype(int), np.floor(cols).astype(int)
    fr, fc = rows - r0, cols - c0
    for dr, wr in ((0, 1 - fr), (1, fr)):
        for dc, wc in ((0, 1 - fc), (1, fc)):
            np.add.at(k, (np.clip(r0 + dr, 0, size - 1), np.clip(c0 + dc, 0, size - 1)), wr * wc)
    return k / k.sum()


def blur(image: Any, kernel: np.ndarray) -> Any:
    """y = k * x, the 2-D convolution of every channel with ``kernel`` (kh, kw), odd sides,
    the image's edges extended by reflection (dcb|abcd|cba, PyTorch's 'reflect' = SciPy's
    'mirror') so that the output keeps the input's size. A true convolution (the kernel is
    flipped before ``conv2d``'s correlation), so an off-centre kernel shifts the way it points."""
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim != 2 or kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
        raise ValueError(f"blur: kernel must be 2-D with odd sides, got shape {kernel.shape}")
    x, is_array, single = _batch("blur", image)
    kh, kw = kernel.shape
    if kh // 2 >= x.shape[2] or kw // 2 >= x.shape[3]:
        raise ValueError(f"blur: a {kh} x {kw} kernel needs an image larger than {kh // 2} x {kw // 2} "
                         f"(reflect padding), got {x.shape[2]} x {x.shape[3]}")
    c = x.shape[1]
    weight = np.broadcast_to(kernel[::-1, ::-1], (c, 1, kh, kw)).astype(x.dtype)
    padded = F.pad(x, (kw // 2, kw // 2, kh // 2, kh // 2), mode="reflect")
    return _unbatch(F.conv2d(padded, tv.tensor(weight), groups=c), is_array, single)


# ----------------------------------------------------------------------------- resolution
def downsample(image: Any, scale: int) -> Any:
    """Shrink by the integer ``scale`` to (H // scale, W // scale) with antialiased bicubic
    interpolation (``interpolate(..., mode='bicubic', antialias=True)``: PyTorch's and PIL's
    resize, whose low-pass keeps the small image free of aliasing). Differentiable."""
    if int(scale) != scale or scale < 1:
        raise ValueError(f"downsample: scale must be a positive integer, got {scale}")
    x, is_array, single = _batch("downsample", image)
    h, w = x.shape[2] // int(scale), x.shape[3] // int(scale)
    if min(h, w) < 1:
        raise ValueError(f"downsample: a {x.shape[2]} x {x.shape[3]} image is smaller than the scale {scale}")
    y = F.interpolate(x, size=(h, w), mode="bicubic", antialias=True)
    return _unbatch(y, is_array, single)


def upsample(image: Any, scale: int) -> Any:
    """Grow by the integer ``scale`` with bicubic interpolation: the classical super-resolution
    baseline, and SRCNN's input."""
    x, is_array, single = _batch("upsample", image)
    y = F.interpolate(x, size=(x.shape[2] * int(scale), x.shape[3] * int(scale)), mode="bicubic")
    return _unbatch(y, is_array, single)


def jpeg(image: Any, quality: int) -> Any:
    """Round trip through Pillow's JPEG encoder at ``quality`` (1-95): blocking and ringing
    artefacts. Grey (C = 1) or RGB (C = 3); values are rounded to 8 bits. Not differentiable."""
    from PIL import Image

    if not 1 <= quality <= 95:
        raise ValueError(f"jpeg: quality must be in [1, 95], got {quality}")
    x, is_array, single = _batch("jpeg", image)
    if x.shape[1] not in (1, 3):
        raise ValueError(f"jpeg: needs 1 (grey) or 3 (RGB) channels, got {x.shape[1]}")
    out = []
    for img in x.numpy():
        pixels = np.clip(np.round(img.transpose(1, 2, 0) * 255), 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels).save(buffer, "JPEG", quality=int(quality))
        decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())), dtype=np.float64) / 255
        out.append(decoded.reshape(pixels.shape).transpose(2, 0, 1))
    return _unbatch(tv.tensor(np.stack(out).astype(x.dtype)), is_array, single)
