"""Image operations behind the transforms, one function each (torchvision.transforms.functional).

Images are NumPy arrays (C, H, W), floating point, values in [0, 1]; every function returns a
new array of the same dtype. The formulas are torchvision's (v2, tensor backend), so a learner
can check one against the other; where torchvision needs uint8 (equalize) the image is
quantised the way torchvision's ``to_dtype(..., scale=True)`` does it.
"""
from __future__ import annotations

import math
import numbers
from typing import Sequence

import numpy as np

from tinyvision.functional._util import ntuple

# ITU-R 601 luma weights as torchvision writes them (0.2989, not 0.299).
GRAY_WEIGHTS = (0.2989, 0.587, 0.114)
INTERPOLATIONS = ("nearest", "bilinear")


def check_image(img: np.ndarray, op: str) -> np.ndarray:
    """Refuse what is not a floating (C, H, W) array, naming the op and what came in."""
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.dtype.kind != "f":
        what = f"{type(img).__name__} of shape {getattr(img, 'shape', None)}, dtype {getattr(img, 'dtype', None)}"
        raise TypeError(f"{op}: expected a float (C, H, W) NumPy image, got {what} "
                        "(use ToTensor() first for (H, W, C) uint8 images)")
    return img


def _pair(size: int | Sequence[int], name: str) -> tuple[int, int]:
    """An int n means (n, n); a sequence of one or two means (h, w) (the one ``ntuple`` rule)."""
    return ntuple("transforms", name, size, 2, 1)  # type: ignore[return-value]


# ------------------------------------------------------------------------ conversion
def to_tensor(pic: np.ndarray) -> np.ndarray:
    """(H, W, C) or (H, W) uint8 -> (C, H, W) float32 in [0, 1] (divided by 255).
    A float (C, H, W) image is passed through as float32 (our datasets already give those)."""
    pic = np.asarray(pic)
    if pic.dtype == np.uint8:
        if pic.ndim == 2:
            pic = pic[:, :, None]
        if pic.ndim != 3:
            raise ValueError(f"to_tensor: a uint8 image must be (H, W) or (H, W, C), got shape {pic.shape}")
        return np.ascontiguousarray(pic.transpose(2, 0, 1), dtype=np.float32) / np.float32(255)
    return check_image(pic, "to_tensor").astype(np.float32, copy=False)


def normalize(img: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """(img - mean[c]) / std[c] per channel."""
    check_image(img, "normalize")
    mean, std = (np.asarray(v, dtype=img.dtype).reshape(-1, 1, 1) for v in (mean, std))
    if mean.shape[0] not in (1, img.shape[0]) or std.shape[0] not in (1, img.shape[0]):
        raise ValueError(f"normalize: mean/std need 1 or {img.shape[0]} values, got {mean.shape[0]} and {std.shape[0]}")
    if np.any(std == 0):
        raise ValueError(f"normalize: std must not contain 0, got {std.ravel().tolist()}")
    return (img - mean) / std


# ------------------------------------------------------------------------ geometry
def hflip(img: np.ndarray) -> np.ndarray:
    return check_image(img, "hflip")[:, :, ::-1].copy()


def vflip(img: np.ndarray) -> np.ndarray:
    return check_image(img, "vflip")[:, ::-1, :].copy()


def _source_index(in_size: int, out_size: int, mode: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each output index along one axis: the two source indices and the weight of the
    second, as torch.nn.functional.interpolate (align_corners=False) computes them.

    bilinear: src = (dst + 0.5) * in/out - 0.5, clamped at 0; i0 = floor(src), w = src - i0.
    nearest:  src = floor(dst * in/out).
    """
    scale = in_size / out_size
    dst = np.arange(out_size, dtype=np.float64)
    if mode == "nearest":
        i0 = np.minimum(np.floor(dst * scale).astype(np.int64), in_size - 1)
        return i0, i0, np.zeros(out_size)
    src = np.maximum((dst + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    return i0, np.minimum(i0 + 1, in_size - 1), src - i0


def resize(img: np.ndarray, size: int | Sequence[int], interpolation: str = "bilinear") -> np.ndarray:
    """Resize to ``size``: (h, w), or an int that the shorter edge becomes (aspect kept).

    Separable: interpolate along H, then along W. No antialiasing (torchvision's
    ``antialias=False``), so shrinking by a large factor aliases.
    """
    check_image(img, "resize")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"resize: interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    _, h, w = img.shape
    if isinstance(size, (int, np.integer)) or len(size) == 1:
        short = _pair(size, "size")[0]
        out_h, out_w = (short, int(short * w / h)) if h <= w else (int(short * h / w), short)
    else:
        out_h, out_w = _pair(size, "size")
    if out_h < 1 or out_w < 1:
        raise ValueError(f"resize: output size must be positive, got {(out_h, out_w)} for input {(h, w)}")
    y0, y1, wy = _source_index(h, out_h, interpolation)
    x0, x1, wx = _source_index(w, out_w, interpolation)
    wy, wx = wy.astype(img.dtype)[:, None], wx.astype(img.dtype)
    rows = img[:, y0] * (1 - wy) + img[:, y1] * wy                # (C, out_h, W)
    return rows[:, :, x0] * (1 - wx) + rows[:, :, x1] * wx       # (C, out_h, out_w)


def pad(img: np.ndarray, padding: int | Sequence[int], fill: float = 0.0,
        padding_mode: str = "constant") -> np.ndarray:
    """Pad the borders. ``padding``: n (all sides), (left/right, top/bottom) or
    (left, top, right, bottom), as in torchvision. Modes: constant, edge, reflect, symmetric."""
    check_image(img, "pad")
    p = [padding] if isinstance(padding, (int, np.integer)) else list(padding)
    if len(p) not in (1, 2, 4):
        raise ValueError(f"pad: padding must be an int or 1, 2 or 4 ints, got {padding!r}")
    left, top, right, bottom = {1: p * 4, 2: p * 2, 4: p}[len(p)]
    widths = ((0, 0), (top, bottom), (left, right))
    if padding_mode == "constant":
        return np.pad(img, widths, mode="constant", constant_values=fill)
    if padding_mode not in ("edge", "reflect", "symmetric"):
        raise ValueError(f"pad: padding_mode must be constant, edge, reflect or symmetric, got {padding_mode!r}")
    return np.pad(img, widths, mode=padding_mode)


def crop(img: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    """img[:, top:top+height, left:left+width]; parts outside the image are zeros."""
    check_image(img, "crop")
    _, h, w = img.shape
    before_y, before_x = max(0, -top), max(0, -left)
    after_y, after_x = max(0, top + height - h), max(0, left + width - w)
    if before_y or before_x or after_y or after_x:
        img = np.pad(img, ((0, 0), (before_y, after_y), (before_x, after_x)))
        top, left = top + before_y, left + before_x
    return img[:, top:top + height, left:left + width].copy()


def center_crop(img: np.ndarray, output_size: int | Sequence[int]) -> np.ndarray:
    """The central (h, w) window; zero-padded (more at the bottom/right) when larger."""
    check_image(img, "center_crop")
    (_, h, w), (th, tw) = img.shape, _pair(output_size, "output_size")
    # torchvision: top = round((h - th) / 2) when cropping; -(th - h) // 2 when padding
    top = int(round((h - th) / 2.0)) if th <= h else -((th - h) // 2)
    left = int(round((w - tw) / 2.0)) if tw <= w else -((tw - w) // 2)
    return crop(img, top, left, th, tw)


def resized_crop(img: np.ndarray, top: int, left: int, height: int, width: int,
                 size: int | Sequence[int], interpolation: str = "bilinear") -> np.ndarray:
    return resize(crop(img, top, left, height, width), size, interpolation)


def _inverse_affine_matrix(center: Sequence[float], angle: float, translate: Sequence[float],
                           scale: float, shear: Sequence[float]) -> np.ndarray:
    """The 2x3 matrix that maps an output pixel back to where it comes from in the input.

    The forward map is  M = T(translate) C R(angle) Sh(shear) S(scale) C^-1  (C moves the
    centre to the origin); we need M^-1 = C S^-1 (R Sh)^-1 C^-1 T^-1. torchvision's
    closed form: R Sh = [[a, b], [c, d]] with det 1, so (R Sh)^-1 = [[d, -b], [-c, a]].
    Angles in degrees; positive angle rotates clockwise on screen (y points down).
    """
    rot, sx, sy = math.radians(angle), math.radians(shear[0]), math.radians(shear[1])
    (cx, cy), (tx, ty) = center, translate
    a = math.cos(rot - sy) / math.cos(sy)
    b = -math.cos(rot - sy) * math.tan(sx) / math.cos(sy) - math.sin(rot)
    c = math.sin(rot - sy) / math.cos(sy)
    d = -math.sin(rot - sy) * math.tan(sx) / math.cos(sy) + math.cos(rot)
    m = np.array([[d, -b, 0.0], [-c, a, 0.0]]) / scale
    m[:, 2] = m[:, :2] @ [-cx - tx, -cy - ty] + [cx, cy]
    return m


def _grid_sample(img: np.ndarray, ix: np.ndarray, iy: np.ndarray, mode: str) -> np.ndarray:
    """img sampled at pixel coordinates (ix, iy) (each (H', W')), zeros outside the image;
    torch.nn.functional.grid_sample with align_corners=False, padding_mode='zeros'."""
    c, h, w = img.shape
    if mode == "nearest":
        xi, yi = np.rint(ix).astype(np.int64), np.rint(iy).astype(np.int64)  # round half to even, as torch
        inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        return img[:, np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)] * inside
    x0, y0 = np.floor(ix).astype(np.int64), np.floor(iy).astype(np.int64)
    fx, fy = (ix - x0).astype(img.dtype), (iy - y0).astype(img.dtype)
    out = np.zeros((c,) + ix.shape, dtype=img.dtype)
    for dy, wy in ((0, 1 - fy), (1, fy)):          # the four neighbours, each weighted by
        for dx, wx in ((0, 1 - fx), (1, fx)):      # the area of the opposite sub-rectangle
            xs, ys = x0 + dx, y0 + dy
            inside = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)
            out += img[:, np.clip(ys, 0, h - 1), np.clip(xs, 0, w - 1)] * (wx * wy * inside)
    return out


def affine(img: np.ndarray, angle: float, translate: Sequence[float], scale: float,
           shear: float | Sequence[float], interpolation: str = "nearest",
           fill: float | Sequence[float] | None = None, center: Sequence[float] | None = None) -> np.ndarray:
    """Rotate by ``angle`` degrees (clockwise), scale, shear (degrees, x then y) about
    ``center`` (default: the image centre), then translate by (tx, ty) pixels.

    Inverse mapping: each output pixel looks up its source with the inverse matrix and is
    sampled there (nearest or bilinear). Outside the image: zeros when ``fill`` is None, else
    ``fill``, blended in with a sampled validity mask as torchvision does.
    """
    check_image(img, "affine")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"affine: interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    if scale <= 0:
        raise ValueError(f"affine: scale must be positive, got {scale}")
    shear = (float(shear), 0.0) if isinstance(shear, numbers.Number) else tuple(shear) + (0.0,) * (2 - len(shear))
    c, h, w = img.shape
    # torchvision works in coordinates centred on the image: pixel j has x = j - w/2 + 0.5
    cx, cy = (0.0, 0.0) if center is None else (center[0] - w * 0.5, center[1] - h * 0.5)
    m = _inverse_affine_matrix((cx, cy), angle, translate, scale, shear)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    x, y = x - w * 0.5 + 0.5, y - h * 0.5 + 0.5
    src_x = m[0, 0] * x + m[0, 1] * y + m[0, 2] + w * 0.5 - 0.5   # back to pixel indices
    src_y = m[1, 0] * x + m[1, 1] * y + m[1, 2] + h * 0.5 - 0.5
    out = _grid_sample(img, src_x, src_y, interpolation)
    if fill is None:
        return out
    fill_c = np.broadcast_to(np.asarray(fill, dtype=img.dtype).reshape(-1, 1, 1), (c, 1, 1))
    mask = _grid_sample(np.ones((1, h, w), img.dtype), src_x, src_y, interpolation)
    if interpolation == "nearest":
        mask = (mask >= 0.5).astype(img.dtype)
    return out * mask + (1 - mask) * fill_c


def rotate(img: np.ndarray, angle: float, interpolation: str = "nearest",
           fill: float | Sequence[float] | None = None, center: Sequence[float] | None = None) -> np.ndarray:
    """Rotate by ``angle`` degrees counter-clockwise (torchvision: rotate and affine turn opposite ways)."""
    return affine(img, -angle, (0.0, 0.0), 1.0, (0.0, 0.0), interpolation, fill, center)


# ------------------------------------------------------------------------ colour
def rgb_to_grayscale(img: np.ndarray) -> np.ndarray:
    """(3, H, W) -> (1, H, W): 0.2989 R + 0.587 G + 0.114 B; a 1-channel image is returned as is."""
    check_image(img, "rgb_to_grayscale")
    if img.shape[0] == 1:
        return img.copy()
    if img.shape[0] != 3:
        raise ValueError(f"rgb_to_grayscale: expected 1 or 3 channels, got {img.shape[0]}")
    r, g, b = img
    return (GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b)[None].astype(img.dtype)


def blend(img1: np.ndarray, img2: np.ndarray | float, ratio: float) -> np.ndarray:
    """clip(ratio * img1 + (1 - ratio) * img2, 0, 1): ratio 1 keeps img1, 0 gives img2, >1 extrapolates."""
    return np.clip(ratio * img1 + (1.0 - ratio) * img2, 0.0, 1.0).astype(img1.dtype)


def _check_factor(factor: float, name: str) -> None:
    if factor < 0:
        raise ValueError(f"{name}: factor must be non-negative, got {factor}")


def adjust_brightness(img: np.ndarray, brightness_factor: float) -> np.ndarray:
    """Blend with black: clip(f * img)."""
    _check_factor(brightness_factor, "adjust_brightness")
    return blend(check_image(img, "adjust_brightness"), 0.0, brightness_factor)


def adjust_contrast(img: np.ndarray, contrast_factor: float) -> np.ndarray:
    """Blend with the mean of the grayscale image (one number for the whole image)."""
    _check_factor(contrast_factor, "adjust_contrast")
    return blend(img, rgb_to_grayscale(img).mean(), contrast_factor)


def adjust_saturation(img: np.ndarray, saturation_factor: float) -> np.ndarray:
    """Blend with the grayscale image (0 gives gray, 1 the original); 1-channel images unchanged."""
    _check_factor(saturation_factor, "adjust_saturation")
    return img.copy() if check_image(img, "adjust_saturation").shape[0] == 1 \
        else blend(img, rgb_to_grayscale(img), saturation_factor)


def rgb_to_hsv(img: np.ndarray) -> np.ndarray:
    """(3, H, W) RGB in [0, 1] -> (3, H, W) hue, saturation, value, each in [0, 1].

    v = max(R, G, B), chroma c = v - min(R, G, B), s = c / v. The hue is the angle on the
    colour hexagon, in sixths of a turn: the channel holding the maximum picks the sector
    (R: 0, G: 2, B: 4; ties go to R, then G) and the other two the offset in it, e.g.
    (G - B) / c for R. Gray pixels (c = 0) get hue 0.
    """
    r, g, b = img
    v, c = img.max(0), img.max(0) - img.min(0)
    safe_c = np.where(c > 0, c, 1)
    sector = np.select([c == 0, v == r, v == g], [0.0, (g - b) / safe_c, 2 + (b - r) / safe_c],
                       4 + (r - g) / safe_c)
    s = np.where(v > 0, c / np.where(v > 0, v, 1), 0)
    return np.stack([(sector / 6) % 1.0, s, v])


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """The inverse of ``rgb_to_hsv``: in sector i = floor(6 h) (fraction f), each channel is v,
    the minimum p = v (1 - s), or rising t = v (1 - s (1 - f)) / falling q = v (1 - s f)."""
    h, s, v = hsv
    i = np.floor(h * 6)
    f = h * 6 - i
    i = i.astype(np.int64) % 6
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    return np.stack([np.choose(i, [v, q, p, p, t, v]), np.choose(i, [t, v, v, q, p, p]),
                     np.choose(i, [p, p, t, v, v, q])])


def adjust_hue(img: np.ndarray, hue_factor: float) -> np.ndarray:
    """Turn every pixel's hue by ``hue_factor`` of a full turn (in [-0.5, 0.5]), keeping its
    saturation and value; 1-channel images are returned unchanged."""
    if not -0.5 <= hue_factor <= 0.5:
        raise ValueError(f"adjust_hue: hue_factor must be in [-0.5, 0.5], got {hue_factor}")
    if check_image(img, "adjust_hue").shape[0] == 1:
        return img.copy()
    if img.shape[0] != 3:
        raise ValueError(f"adjust_hue: expected 1 or 3 channels, got {img.shape[0]}")
    h, s, v = rgb_to_hsv(img)
    return hsv_to_rgb(np.stack([(h + hue_factor) % 1.0, s, v])).astype(img.dtype)


def adjust_sharpness(img: np.ndarray, sharpness_factor: float) -> np.ndarray:
    """Blend with a smoothed copy (3x3 kernel [[1,1,1],[1,5,1],[1,1,1]] / 13, border pixels kept):
    factor 0 blurs, 1 keeps, 2 sharpens."""
    _check_factor(sharpness_factor, "adjust_sharpness")
    check_image(img, "adjust_sharpness")
    _, h, w = img.shape
    if h <= 2 or w <= 2:
        return img.copy()
    box = sum(img[:, dy:h - 2 + dy, dx:w - 2 + dx] for dy in range(3) for dx in range(3))
    smooth = img.copy()
    smooth[:, 1:-1, 1:-1] = (box + 4 * img[:, 1:-1, 1:-1]) / 13   # centre weight 5 = 1 + 4
    return blend(img, smooth, sharpness_factor)


def solarize(img: np.ndarray, threshold: float) -> np.ndarray:
    """Invert (1 - x) every value at or above ``threshold``."""
    return np.where(check_image(img, "solarize") >= threshold, 1 - img, img).astype(img.dtype)


def posterize(img: np.ndarray, bits: int) -> np.ndarray:
    """Keep ``bits`` bits per channel: floor(x * 2^bits) / 2^bits (torchvision v2 on floats)."""
    if not 0 <= bits <= 8:
        raise ValueError(f"posterize: bits must be in [0, 8], got {bits}")
    levels = 2 ** bits
    return (np.clip(np.floor(check_image(img, "posterize") * levels), 0, levels - 1) / levels).astype(img.dtype)


def autocontrast(img: np.ndarray) -> np.ndarray:
    """Stretch each channel to [0, 1]: (x - min) / (max - min); a flat channel stays as it is."""
    lo = check_image(img, "autocontrast").min(axis=(1, 2), keepdims=True)
    hi = img.max(axis=(1, 2), keepdims=True)
    flat = hi == lo
    scale = np.where(flat, 1.0, 1.0 / np.where(flat, 1.0, hi - lo))
    return np.clip((img - np.where(flat, 0.0, lo)) * scale, 0, 1).astype(img.dtype)


def equalize(img: np.ndarray) -> np.ndarray:
    """Histogram equalisation per channel, on the image quantised to uint8 as torchvision's
    to_dtype does (floor(x * 255.999)); the result is uint8 / 255."""
    u8 = np.clip(check_image(img, "equalize") * (256 - 1e-3), 0, 255).astype(np.uint8)
    out = np.empty(img.shape, dtype=img.dtype)
    for ch, channel in enumerate(u8):
        hist = np.bincount(channel.ravel(), minlength=256)
        step = hist[hist != 0][:-1].sum() // 255      # pixels per output level, the top bin left out
        if step == 0:
            out[ch] = channel / 255.0
            continue
        lut = (np.cumsum(hist) + step // 2) // step   # level each value maps to
        lut = np.clip(np.concatenate([[0], lut[:-1]]), 0, 255)
        out[ch] = lut[channel] / 255.0
    return out
