"""Real photographs that ship inside scikit-image (``skimage.data``) and scikit-learn
(``load_sample_image``): nothing is downloaded.

The split is fixed, so that no evaluation image is ever trained on or used to pick a checkpoint:

    TRAIN_PHOTOS  astronaut, coffee, chelsea, rocket, immunohistochemistry, hubble_deep_field,
                  brick, grass, gravel (scikit-image) and flower (scikit-learn)
    VAL_PHOTOS    moon        (chooses checkpoints)
    TEST_PHOTOS   camera      (the cameraman of the literature's Set12: the reported figure)
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

TRAIN_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field",
                "brick", "grass", "gravel", "flower")
VAL_PHOTOS = ("moon",)
TEST_PHOTOS = ("camera",)
PHOTOS = TRAIN_PHOTOS + VAL_PHOTOS + TEST_PHOTOS


def _raw(name: str) -> np.ndarray:
    """(H, W) or (H, W, 3) uint8 as the package ships it."""
    if name == "flower":
        # the JPEG inside scikit-learn's package, decoded as its load_sample_image does, without
        # importing scikit-learn (seconds) just to find the file
        import importlib.util
        from pathlib import Path

        from PIL import Image

        spec = importlib.util.find_spec("sklearn")
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("the 'flower' photo needs scikit-learn: pip install 'tinyvision[data]'")
        path = Path(spec.submodule_search_locations[0]) / "datasets" / "images" / "flower.jpg"
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    try:
        import skimage.data
    except ImportError:
        raise SystemExit("the photos need scikit-image: pip install 'tinyvision[imaging]'") from None
    return getattr(skimage.data, name)()


@lru_cache(maxsize=32)
def load_photo(name: str, grey: bool = True) -> np.ndarray:
    """The photo ``name`` as float32 in [0, 1]: (1, H, W) when ``grey`` (colour photos converted
    with ITU-R BT.709 luma, 0.2125 R + 0.7154 G + 0.0721 B, as scikit-image's rgb2gray), else
    (3, H, W) (a grey photo repeated over three channels). Decoded once and cached: the array
    is read-only (copy it to modify it)."""
    if name not in PHOTOS:
        raise ValueError(f"load_photo: unknown photo {name!r}; choose one of: {', '.join(PHOTOS)}")
    raw = _raw(name).astype(np.float64) / 255
    if raw.ndim == 3:
        raw = raw[..., :3]
        if grey:
            raw = raw @ np.array([0.2125, 0.7154, 0.0721])
    if raw.ndim == 2:
        raw = raw[None] if grey else np.repeat(raw[None], 3, axis=0)
    else:
        raw = raw.transpose(2, 0, 1)
    photo = np.ascontiguousarray(raw, dtype=np.float32)
    photo.flags.writeable = False
    return photo


def load_photos(names: tuple[str, ...] | list[str], grey: bool = True) -> list[np.ndarray]:
    return [load_photo(n, grey) for n in names]
