"""ImageFolder: images sorted into one sub-folder per class, as torchvision's ImageFolder.

    root/cat/001.png
    root/cat/xyz.jpg
    root/dog/123.jpeg

Classes are the sub-folder names in sorted order; class_to_idx maps them to 0, 1, ...
Images are decoded with Pillow (installed with matplotlib), converted to RGB.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from tinyvision.data.dataset import Dataset

IMG_EXTENSIONS = (".png", ".jpg", ".jpeg")


def load_image(path: str | Path) -> np.ndarray:
    """An image file -> (3, H, W) float32 RGB in [0, 1]."""
    try:
        from PIL import Image
    except ImportError as e:
        raise ImportError("ImageFolder decodes PNG/JPEG with Pillow: pip install tinyvision[viz]") from e
    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"load_image: cannot decode {path}: {e}") from e
    return np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32) / np.float32(255)


class ImageFolder(Dataset):
    """Samples (image (3, H, W) float32, class index int), decoded on access.

    Attributes: classes (sorted folder names), class_to_idx, samples [(path, class index)],
    targets [class index]. ``transform`` applies to the image, ``target_transform`` to the index.
    """

    def __init__(self, root: str | Path, transform: Callable | None = None,
                 target_transform: Callable | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"ImageFolder: {str(root)!r} is not a folder; expected one sub-folder "
                                    f"per class holding {'/'.join(IMG_EXTENSIONS)} files")
        self.classes = sorted(d.name for d in self.root.iterdir() if d.is_dir())
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.samples = [(p, self.class_to_idx[c]) for c in self.classes
                        for p in sorted((self.root / c).rglob("*")) if p.suffix.lower() in IMG_EXTENSIONS]
        if not self.samples:
            raise FileNotFoundError(f"ImageFolder: found no {'/'.join(IMG_EXTENSIONS)} files in the class "
                                    f"sub-folders of {str(root)!r} (sub-folders: {self.classes})")
        self.targets = [t for _, t in self.samples]
        self.transform, self.target_transform = transform, target_transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        path, target = self.samples[index]
        img = load_image(path)
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target
