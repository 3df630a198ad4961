"""ImageFolder on a tiny tree of PNG/JPEG files written with Pillow."""
import numpy as np
import pytest
from PIL import Image

from tinyvision.data import DataLoader, ImageFolder, transforms as T

rng = np.random.default_rng(0)


@pytest.fixture
def tree(tmp_path):
    pixels = {}
    for cls, names in {"dog": ["b.png", "a.PNG"], "cat": ["x.jpg"], "empty": []}.items():
        (tmp_path / cls).mkdir()
        for name in names:
            rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
            Image.fromarray(rgb).save(tmp_path / cls / name)
            pixels[(cls, name)] = rgb
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    Image.fromarray(np.full((4, 4), 200, np.uint8), mode="L").save(tmp_path / "cat" / "gray.png")
    return tmp_path, pixels


def test_classes_samples_and_pixels(tree):
    root, pixels = tree
    ds = ImageFolder(root)
    assert ds.classes == ["cat", "dog", "empty"] and ds.class_to_idx == {"cat": 0, "dog": 1, "empty": 2}
    assert [(p.name, t) for p, t in ds.samples] == [("gray.png", 0), ("x.jpg", 0), ("a.PNG", 1), ("b.png", 1)]
    img, label = ds[2]
    assert label == 1 and img.shape == (3, 5, 7) and img.dtype == np.float32
    np.testing.assert_allclose(img, pixels[("dog", "a.PNG")].transpose(2, 0, 1) / 255.0, rtol=1e-6)  # PNG: lossless
    jpg, _ = ds[1]
    # JPEG is lossy: random pixels come back within a broad error only
    assert np.abs(jpg - pixels[("cat", "x.jpg")].transpose(2, 0, 1) / 255.0).mean() < 0.25
    gray, _ = ds[0]
    assert gray.shape == (3, 4, 4)
    np.testing.assert_allclose(gray, 200 / 255.0, rtol=1e-6)   # grayscale becomes RGB


def test_transform_and_loader(tree):
    ds = ImageFolder(tree[0], transform=T.Compose([T.Resize((8, 8)), T.Normalize([0.5] * 3, [0.5] * 3)]))
    images, labels = next(iter(DataLoader(ds, batch_size=4)))
    assert images.shape == (4, 3, 8, 8) and images.dtype == np.float32
    assert labels.tolist() == [0, 0, 1, 1] and labels.dtype == np.int64


def test_errors(tree, tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a folder; expected one sub-folder per class"):
        ImageFolder(tmp_path / "nowhere")
    (tmp_path / "bare" / "c").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"found no .png/.jpg/.jpeg files.*\['c'\]"):
        ImageFolder(tmp_path / "bare")
    root, _ = tree
    (root / "dog" / "c.png").write_bytes(b"\x89PNG broken")
    ds = ImageFolder(root)
    broken = [p.name for p, _ in ds.samples].index("c.png")
    with pytest.raises(ValueError, match="cannot decode .*c.png"):
        ds[broken]
