"""Reading and writing 8-bit images for restoration: grey stays grey (1 channel), colour is RGB."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def read_image(path: str | Path) -> np.ndarray:
    """A PNG/JPEG/... file -> (1, H, W) for grey images (Pillow modes 1, L, LA, I, I;16, F),
    else (3, H, W) RGB; float32 in [0, 1]. A file Pillow cannot decode: ValueError naming it."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode in ("1", "L", "LA"):
                pixels = np.asarray(im.convert("L"), dtype=np.float32)[None] / 255
            elif mode.startswith("I") or mode == "F":
                raw = np.asarray(im, dtype=np.float32)
                pixels = (raw / (65535 if raw.max() > 255 else 255))[None]
            else:
                pixels = np.asarray(im.convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 255
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"{path}: not an image Pillow can read ({exc})") from None
    return np.ascontiguousarray(pixels, dtype=np.float32)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W) or (H, W, 3) uint8, clipped and rounded."""
    pixels = np.clip(np.round(np.asarray(image, dtype=np.float64) * 255), 0, 255).astype(np.uint8)
    return pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)


def write_image(path: str | Path, image: np.ndarray) -> None:
    """Save (1, H, W) or (3, H, W) in [0, 1] as an 8-bit grey or RGB file (format from the suffix)."""
    from PIL import Image

    Image.fromarray(to_uint8(image)).save(path)
