"""Eulerian video magnification (Wu, Rubinstein, Shih, Guttag, Durand & Freeman 2012, linear
version): make motions too small to see visible without tracking anything.

For a frame I(x, t) = f(x + d(t)) with a small displacement d, a first-order Taylor expansion
gives I ~ f(x) + d(t) f'(x). A temporal band-pass filter per pixel keeps B(x, t) = d_b(t) f'(x)
(the motion inside the band); adding alpha B back gives

    I + alpha B ~ f(x) + (1 + alpha) d_b(t) f'(x) ~ f(x + (1 + alpha) d_b(t))

so the motion is (1 + alpha) times larger. The filtering is done per level of a Laplacian
pyramid of every frame, which lets coarse levels (large structures, where the Taylor
approximation holds for larger motions) be amplified with the full alpha while the finest
levels, where (1 + alpha) d would exceed about a wavelength / 8 and the approximation breaks
into artefacts, are amplified less (``attenuate_levels``).

Videos are (T, H, W) or (T, H, W, C) float arrays in [0, 1]; ``fps`` gives time its unit.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

# the 5-tap binomial filter of Burt & Adelson's pyramids (a cheap Gaussian, sigma ~ 1)
_BINOMIAL = np.array([1, 4, 6, 4, 1], dtype=np.float64) / 16


def _blur(video: np.ndarray) -> np.ndarray:
    """The binomial filter along H and W of (T, H, W, ...), edges reflected."""
    out = ndimage.convolve1d(video, _BINOMIAL, axis=1, mode="reflect")
    return ndimage.convolve1d(out, _BINOMIAL, axis=2, mode="reflect")


def _down(video: np.ndarray) -> np.ndarray:
    return _blur(video)[:, ::2, ::2]


def _up(video: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Double the size by zero insertion and the binomial filter (x4 for the zeros), cropped."""
    up = np.zeros((video.shape[0], 2 * video.shape[1], 2 * video.shape[2]) + video.shape[3:])
    up[:, ::2, ::2] = video
    return 4 * _blur(up)[:, :shape[0], :shape[1]]


def laplacian_pyramid(video: np.ndarray, levels: int) -> list[np.ndarray]:
    """[L_0, ..., L_{levels-1}, G_levels] of every frame: L_i = G_i - up(G_{i+1}), G_0 = the
    frames, G_{i+1} = down(G_i); summing back with ``collapse`` is exact."""
    pyramid, g = [], video
    for _ in range(levels):
        smaller = _down(g)
        pyramid.append(g - _up(smaller, g.shape[1:3]))
        g = smaller
    pyramid.append(g)
    return pyramid


def collapse(pyramid: list[np.ndarray]) -> np.ndarray:
    g = pyramid[-1]
    for band in reversed(pyramid[:-1]):
        g = band + _up(g, band.shape[1:3])
    return g


def temporal_bandpass(signal: np.ndarray, fps: float, low: float, high: float) -> np.ndarray:
    """The ideal band-pass along axis 0: the FFT over time, frequencies outside [low, high] Hz
    set to zero, and back (a periodic video is assumed, as the paper's ideal filter does)."""
    spectrum = np.fft.rfft(signal, axis=0)
    freqs = np.fft.rfftfreq(signal.shape[0], d=1 / fps)
    keep = ((freqs >= low) & (freqs <= high)).reshape((-1,) + (1,) * (signal.ndim - 1))
    return np.fft.irfft(spectrum * keep, n=signal.shape[0], axis=0)


def magnify(video: np.ndarray, alpha: float, band: tuple[float, float], fps: float = 30.0, levels: int = 4,
            attenuate_levels: int = 0) -> np.ndarray:
    """Amplify the motions in the temporal ``band`` (Hz) of ``video`` (T, H, W[, C]) by
    (1 + alpha). The ``attenuate_levels`` finest pyramid levels get no amplification (where
    the motion is large against the wavelength). Returns float64, not clipped."""
    video = np.asarray(video, dtype=np.float64)
    low, high = band
    if video.ndim not in (3, 4):
        raise ValueError(f"magnify: video must be (T, H, W) or (T, H, W, C), got shape {video.shape}")
    if video.shape[0] < 3:
        raise ValueError(f"magnify: needs at least 3 frames, got {video.shape[0]}")
    if not 0 <= low < high <= fps / 2:
        raise ValueError(f"magnify: band must satisfy 0 <= low < high <= fps / 2 = {fps / 2:g} Hz, got {band}")
    if not alpha >= 0:
        raise ValueError(f"magnify: alpha must be >= 0, got {alpha}")
    levels = max(0, min(levels, int(np.log2(min(video.shape[1:3]))) - 1))
    pyramid = laplacian_pyramid(video, levels)
    for i, band_image in enumerate(pyramid):
        if i >= attenuate_levels:
            pyramid[i] = band_image + alpha * temporal_bandpass(band_image, fps, low, high)
    return collapse(pyramid)


def moving_blob_video(frames: int = 60, size: int = 48, amplitude: float = 0.1, frequency: float = 1.0,
                      fps: float = 30.0, radius: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """A grey disk with soft edges (a `shapes`-like object) on a darker background, its centre
    moving horizontally by amplitude * sin(2 pi frequency t) pixels: ((T, H, W), the
    displacement per frame (T,)). Rendered analytically, so sub-pixel motion is exact."""
    t = np.arange(frames) / fps
    shift = amplitude * np.sin(2 * np.pi * frequency * t)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    c = (size - 1) / 2
    video = np.empty((frames, size, size))
    for k, d in enumerate(shift):
        r = np.hypot(x - c - d, y - c)
        video[k] = 0.2 + 0.6 / (1 + np.exp((r - radius) / 1.0))  # a logistic edge about 2 px wide
    return video, shift


def horizontal_centroid(video: np.ndarray) -> np.ndarray:
    """The brightness-weighted mean column of every frame above the background (T,)."""
    above = np.clip(video - np.median(video[0]), 0, None)
    cols = np.arange(video.shape[2])
    return (above.sum(axis=1) * cols).sum(axis=1) / above.sum(axis=(1, 2))


# ------------------------------------------------------------------------------- files
def read_video(path: str | Path) -> np.ndarray:
    """A .npy array (T, H, W) or (T, H, W, C) (uint8, or floats in [0, 1]), or a folder of
    image files read in name order -> float64 (T, H, W[, C]) in [0, 1]."""
    from PIL import Image

    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".tif"))
        if not files:
            raise ValueError(f"{path}: no image files (.png, .jpg, ...) in this folder")
        try:
            frames = [np.asarray(Image.open(f)) for f in files]
        except OSError as exc:
            raise ValueError(f"{path}: cannot read a frame ({exc})") from None
        if len({f.shape for f in frames}) > 1:
            raise ValueError(f"{path}: the frames differ in size: {sorted({f.shape for f in frames})}")
        video = np.stack(frames)
    elif path.suffix == ".npy":
        try:
            video = np.load(path)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a NumPy array file ({exc})") from None
    else:
        raise ValueError(f"{path}: give a folder of frames or a .npy array of shape (T, H, W[, C])")
    if video.dtype == np.uint8:
        return video.astype(np.float64) / 255
    return video.astype(np.float64)


def write_video(path: str | Path, video: np.ndarray) -> None:
    """.npy: the float array; otherwise a folder of 8-bit PNG frames frame_00000.png, ..."""
    from PIL import Image

    path = Path(path)
    if path.suffix == ".npy":
        np.save(path, video)
        return
    path.mkdir(parents=True, exist_ok=True)
    for k, frame in enumerate(np.clip(np.round(video * 255), 0, 255).astype(np.uint8)):
        Image.fromarray(frame).save(path / f"frame_{k:05d}.png")
