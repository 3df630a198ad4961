"""Transforms: callables on one (C, H, W) float image, with torchvision's names and arguments.

The image work is in ``tinyvision.data.functional``; a class here draws the random parameters
(from tinyvision's generator, so ``tinyvision.manual_seed`` makes them repeatable) and calls it.
Batch-level mixing (MixUp, CutMix) is in ``tinyvision.data.mix``.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Sequence

import numpy as np

from tinyvision.data import functional as F
from tinyvision.random import generator


def _uniform(low: float, high: float) -> float:
    return float(generator().uniform(low, high))


def _randint(low: int, high: int) -> int:
    """An int in [low, high)."""
    return int(generator().integers(low, high))


def _range(value: float | Sequence[float], name: str, center: float = 0.0,
           bound: tuple[float, float] = (-math.inf, math.inf)) -> tuple[float, float]:
    """torchvision's convention: a number v means [center - v, center + v] (clipped to
    ``bound``), a pair means itself."""
    if isinstance(value, numbers.Number):
        if value < 0:
            raise ValueError(f"{name}: a single value must be non-negative, got {value}")
        lo, hi = center - value, center + value
    elif len(value) == 2:
        lo, hi = value
    else:
        raise ValueError(f"{name}: expected a number or a (min, max) pair, got {value!r}")
    if lo > hi:
        raise ValueError(f"{name}: min must not exceed max, got ({lo}, {hi})")
    return max(lo, bound[0]), min(hi, bound[1])


class Compose:
    """Apply ``transforms`` one after another."""

    def __init__(self, transforms: Sequence[Callable]) -> None:
        self.transforms = list(transforms)

    def __call__(self, img: Any) -> Any:
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self) -> str:
        return "Compose(\n" + "".join(f"    {t!r},\n" for t in self.transforms) + ")"


class ToTensor:
    """(H, W, C) uint8 -> (C, H, W) float32 in [0, 1]; a float (C, H, W) image passes as float32.
    (It returns a NumPy array: the loader makes the Tensor when it stacks the batch.)"""

    def __call__(self, pic: np.ndarray) -> np.ndarray:
        return F.to_tensor(pic)

    def __repr__(self) -> str:
        return "ToTensor()"


class Normalize:
    """(x - mean[c]) / std[c] per channel."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean, self.std = list(mean), list(std)

    def __call__(self, img: np.ndarray) -> np.ndarray:
        return F.normalize(img, self.mean, self.std)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


class Resize:
    """Resize to ``size`` ((h, w), or an int for the shorter edge), bilinear by default."""

    def __init__(self, size: int | Sequence[int], interpolation: str = "bilinear") -> None:
        self.size, self.interpolation = size, interpolation

    def __call__(self, img: np.ndarray) -> np.ndarray:
        return F.resize(img, self.size, self.interpolation)

    def __repr__(self) -> str:
        return f"Resize(size={self.size}, interpolation={self.interpolation!r})"


class CenterCrop:
    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = size

    def __call__(self, img: np.ndarray) -> np.ndarray:
        return F.center_crop(img, self.size)

    def __repr__(self) -> str:
        return f"CenterCrop(size={self.size})"


class Pad:
    def __init__(self, padding: int | Sequence[int], fill: float = 0.0, padding_mode: str = "constant") -> None:
        self.padding, self.fill, self.padding_mode = padding, fill, padding_mode

    def __call__(self, img: np.ndarray) -> np.ndarray:
        return F.pad(img, self.padding, self.fill, self.padding_mode)

    def __repr__(self) -> str:
        return f"Pad(padding={self.padding}, fill={self.fill}, padding_mode={self.padding_mode!r})"


class RandomCrop:
    """Pad by ``padding`` (see F.pad), then cut a random (h, w) window; ``pad_if_needed`` pads
    an image smaller than the window. The CIFAR recipe: RandomCrop(32, padding=4)."""

    def __init__(self, size: int | Sequence[int], padding: int | Sequence[int] | None = None,
                 pad_if_needed: bool = False, fill: float = 0.0, padding_mode: str = "constant") -> None:
        self.size = F._pair(size, "RandomCrop size")
        self.padding, self.pad_if_needed, self.fill, self.padding_mode = padding, pad_if_needed, fill, padding_mode

    def __call__(self, img: np.ndarray) -> np.ndarray:
        if self.padding is not None:
            img = F.pad(img, self.padding, self.fill, self.padding_mode)
        (th, tw), (_, h, w) = self.size, img.shape
        if self.pad_if_needed and (h < th or w < tw):
            dx, dy = max(0, tw - w), max(0, th - h)
            img = F.pad(img, (dx, dy), self.fill, self.padding_mode)
            _, h, w = img.shape
        if h < th or w < tw:
            raise ValueError(f"RandomCrop: crop size {(th, tw)} is larger than the (padded) image {(h, w)}")
        top, left = _randint(0, h - th + 1), _randint(0, w - tw + 1)
        return F.crop(img, top, left, th, tw)

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomResizedCrop:
    """Cut a window of random area (``scale`` x image area) and aspect ratio (``ratio``, drawn
    uniformly in log space), then resize it to ``size``. torchvision's 10 tries, then a
    central crop as fallback."""

    def __init__(self, size: int | Sequence[int], scale: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), interpolation: str = "bilinear") -> None:
        if scale[0] > scale[1] or ratio[0] > ratio[1]:
            raise ValueError(f"RandomResizedCrop: scale and ratio must be (min, max), got {scale} and {ratio}")
        self.size, self.scale, self.ratio, self.interpolation = F._pair(size, "size"), scale, ratio, interpolation

    def get_params(self, img: np.ndarray) -> tuple[int, int, int, int]:
        """(top, left, height, width) of the window."""
        _, height, width = img.shape
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target_area = area * _uniform(*self.scale)
            aspect = math.exp(_uniform(*log_ratio))
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                return _randint(0, height - h + 1), _randint(0, width - w + 1), h, w
        in_ratio = width / height   # fallback: the largest central window with a ratio in range
        if in_ratio < min(self.ratio):
            w, h = width, int(round(width / min(self.ratio)))
        elif in_ratio > max(self.ratio):
            h, w = height, int(round(height * max(self.ratio)))
        else:
            h, w = height, width
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, img: np.ndarray) -> np.ndarray:
        return F.resized_crop(img, *self.get_params(F.check_image(img, "RandomResizedCrop")),
                              self.size, self.interpolation)

    def __repr__(self) -> str:
        return f"RandomResizedCrop(size={self.size}, scale={self.scale}, ratio={self.ratio})"


class RandomHorizontalFlip:
    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, img: np.ndarray) -> np.ndarray:
        return F.hflip(img) if generator().random() < self.p else img

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class RandomVerticalFlip:
    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, img: np.ndarray) -> np.ndarray:
        return F.vflip(img) if generator().random() < self.p else img

    def __repr__(self) -> str:
        return f"RandomVerticalFlip(p={self.p})"


class ColorJitter:
    """Random brightness, contrast, saturation and hue, applied in a random order.

    brightness, contrast, saturation: b gives a factor drawn from [max(0, 1 - b), 1 + b] (or
    a (min, max) pair); hue: h gives a turn of the hue drawn from [-h, h], h <= 0.5 (or a
    pair within [-0.5, 0.5]). 0 leaves that property alone.
    """

    _ops = {"brightness": F.adjust_brightness, "contrast": F.adjust_contrast,
            "saturation": F.adjust_saturation, "hue": F.adjust_hue}
    _identity = {"brightness": 1.0, "contrast": 1.0, "saturation": 1.0, "hue": 0.0}  # factors that change nothing

    def __init__(self, brightness: float | Sequence[float] = 0, contrast: float | Sequence[float] = 0,
                 saturation: float | Sequence[float] = 0, hue: float | Sequence[float] = 0) -> None:
        self.ranges = {name: _range(v, f"ColorJitter {name}", center=1.0, bound=(0.0, math.inf))
                       for name, v in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation))}
        self.ranges["hue"] = _range(hue, "ColorJitter hue", center=0.0)
        if not -0.5 <= self.ranges["hue"][0] <= self.ranges["hue"][1] <= 0.5:
            raise ValueError(f"ColorJitter hue: must lie within [-0.5, 0.5], got {hue!r}")

    def __call__(self, img: np.ndarray) -> np.ndarray:
        names = list(self.ranges)
        for k in generator().permutation(len(names)):
            name = names[k]
            lo, hi = self.ranges[name]
            if (lo, hi) != (self._identity[name],) * 2:
                img = self._ops[name](img, _uniform(lo, hi))
        return img

    def __repr__(self) -> str:
        return "ColorJitter(" + ", ".join(f"{k}={v}" for k, v in self.ranges.items()) + ")"


class RandomAffine:
    """Random rotation (``degrees``), translation (``translate`` = max fraction of width,
    height), ``scale`` range and ``shear`` (degrees: a number or pair for x, four for x and y).
    Sampled by inverse mapping with ``interpolation``; uncovered pixels get ``fill``."""

    def __init__(self, degrees: float | Sequence[float], translate: Sequence[float] | None = None,
                 scale: Sequence[float] | None = None, shear: float | Sequence[float] | None = None,
                 interpolation: str = "nearest", fill: float | Sequence[float] = 0,
                 center: Sequence[float] | None = None) -> None:
        self.degrees = _range(degrees, "RandomAffine degrees")
        if translate is not None and not all(0 <= t <= 1 for t in translate):
            raise ValueError(f"RandomAffine: translate values must be in [0, 1], got {translate}")
        if scale is not None and (len(scale) != 2 or scale[0] <= 0 or scale[0] > scale[1]):
            raise ValueError(f"RandomAffine: scale must be (min, max) with 0 < min <= max, got {scale}")
        if shear is None or isinstance(shear, numbers.Number) or len(shear) == 2:
            self.shear = (_range(shear or 0, "RandomAffine shear"), (0.0, 0.0))
        elif len(shear) == 4:
            self.shear = ((shear[0], shear[1]), (shear[2], shear[3]))
        else:
            raise ValueError(f"RandomAffine: shear must be a number or 2 or 4 numbers, got {shear!r}")
        self.translate, self.scale = translate, scale
        self.interpolation, self.fill, self.center = interpolation, fill, center

    def get_params(self, height: int, width: int) -> tuple[float, tuple[int, int], float, tuple[float, float]]:
        """(angle, (tx, ty), scale, (shear_x, shear_y)), drawn as torchvision does."""
        angle = _uniform(*self.degrees)
        tx = ty = 0
        if self.translate is not None:
            tx = int(round(_uniform(-self.translate[0] * width, self.translate[0] * width)))
            ty = int(round(_uniform(-self.translate[1] * height, self.translate[1] * height)))
        scale = 1.0 if self.scale is None else _uniform(*self.scale)
        shear = tuple(_uniform(*r) if r != (0.0, 0.0) else 0.0 for r in self.shear)
        return angle, (tx, ty), scale, shear

    def __call__(self, img: np.ndarray) -> np.ndarray:
        _, h, w = F.check_image(img, "RandomAffine").shape
        return F.affine(img, *self.get_params(h, w), self.interpolation, self.fill, self.center)

    def __repr__(self) -> str:
        return (f"RandomAffine(degrees={self.degrees}, translate={self.translate}, scale={self.scale}, "
                f"shear={self.shear})")


class RandomRotation(RandomAffine):
    """Rotate by an angle drawn from ``degrees`` (counter-clockwise, as torchvision's rotate)."""

    def __init__(self, degrees: float | Sequence[float], interpolation: str = "nearest",
                 fill: float | Sequence[float] = 0, center: Sequence[float] | None = None) -> None:
        super().__init__(degrees, interpolation=interpolation, fill=fill, center=center)

    def __call__(self, img: np.ndarray) -> np.ndarray:
        return F.rotate(F.check_image(img, "RandomRotation"), _uniform(*self.degrees),
                        self.interpolation, self.fill, self.center)

    def __repr__(self) -> str:
        return f"RandomRotation(degrees={self.degrees})"


def _shear(axis: int) -> Callable[[np.ndarray, float], np.ndarray]:
    """RandAugment's shear: x' = x + m y (or y' = y + m x) about the top-left corner, i.e. a
    shear angle atan(m)."""
    def op(img: np.ndarray, m: float) -> np.ndarray:
        angles = [0.0, 0.0]
        angles[axis] = math.degrees(math.atan(m))
        return F.affine(img, 0.0, (0, 0), 1.0, angles, center=(0, 0))
    return op


def _translate(axis: int) -> Callable[[np.ndarray, float], np.ndarray]:
    def op(img: np.ndarray, m: float) -> np.ndarray:
        shift = [0, 0]
        shift[axis] = int(m)
        return F.affine(img, 0.0, shift, 1.0, (0.0, 0.0))
    return op


class RandAugment:
    """RandAugment (Cubuk et al., 2019): ``num_ops`` ops drawn uniformly from 14, each at the
    strength of bin ``magnitude`` out of ``num_magnitude_bins`` (torchvision's table; signed
    ops flip sign with probability 1/2). Geometric ops use nearest sampling and zero fill."""

    def __init__(self, num_ops: int = 2, magnitude: int = 9, num_magnitude_bins: int = 31) -> None:
        if not 0 <= magnitude < num_magnitude_bins:
            raise ValueError(f"RandAugment: magnitude must be in [0, {num_magnitude_bins}), got {magnitude}")
        self.num_ops, self.magnitude, self.num_magnitude_bins = num_ops, magnitude, num_magnitude_bins

    def ops(self, height: int, width: int) -> dict[str, tuple[Callable, float, bool]]:
        """name -> (function(img, m), magnitude m at this bin, signed)."""
        bins, k = self.num_magnitude_bins, self.magnitude
        at = lambda start, end: float(np.linspace(start, end, bins)[k])  # noqa: E731 (bin k)
        return {
            "Identity": (lambda img, m: img, 0.0, False),
            "ShearX": (_shear(0), at(0.0, 0.3), True),
            "ShearY": (_shear(1), at(0.0, 0.3), True),
            "TranslateX": (_translate(0), at(0.0, 150.0 / 331.0 * width), True),
            "TranslateY": (_translate(1), at(0.0, 150.0 / 331.0 * height), True),
            "Rotate": (F.rotate, at(0.0, 30.0), True),
            "Brightness": (lambda img, m: F.adjust_brightness(img, 1 + m), at(0.0, 0.9), True),
            "Color": (lambda img, m: F.adjust_saturation(img, 1 + m), at(0.0, 0.9), True),
            "Contrast": (lambda img, m: F.adjust_contrast(img, 1 + m), at(0.0, 0.9), True),
            "Sharpness": (lambda img, m: F.adjust_sharpness(img, 1 + m), at(0.0, 0.9), True),
            # bits 8 -> 4 over the bins; threshold 1 -> 0 (torchvision v2 on float images)
            "Posterize": (lambda img, m: F.posterize(img, int(m)), float(8 - round(k / ((bins - 1) / 4))), False),
            "Solarize": (F.solarize, at(1.0, 0.0), False),
            "AutoContrast": (lambda img, m: F.autocontrast(img), 0.0, False),
            "Equalize": (lambda img, m: F.equalize(img), 0.0, False),
        }

    def __call__(self, img: np.ndarray) -> np.ndarray:
        _, h, w = F.check_image(img, "RandAugment").shape
        ops = list(self.ops(h, w).values())
        for _ in range(self.num_ops):
            fn, m, signed = ops[_randint(0, len(ops))]
            if signed and _randint(0, 2):
                m = -m
            img = fn(img, m)
        return img

    def __repr__(self) -> str:
        return f"RandAugment(num_ops={self.num_ops}, magnitude={self.magnitude})"
