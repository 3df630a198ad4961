"""Readers for MNIST / Fashion-MNIST (IDX files) and CIFAR-10 (python batches) on local disk.

Nothing is downloaded: point ``root`` at the folder that holds the files. The CIFAR-10 batches
are Python pickles, and ``pickle.load`` on a file from the internet can run any code. So
``SafeUnpickler`` resolves no real class at all: the only globals it accepts are the three
NumPy names that an array's pickle refers to, and it swaps them for inert stand-ins that
merely record what they are given; the array is then rebuilt with ``np.frombuffer`` after
checking that it is uint8 of the right size. Everything else in the file must be plain
dicts, lists, bytes, str and ints.
"""
from __future__ import annotations

import gzip
import io
import pickle
from pathlib import Path
from typing import Any, Callable

import numpy as np

from tinyvision.data.dataset import TensorDataset

# IDX: magic = 0, 0, type code, number of dims; then the dims as big-endian int32; then the data.
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
MNIST_FILES = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
CIFAR10_FILES = {True: [f"data_batch_{i}" for i in range(1, 6)], False: ["test_batch"]}
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _find(root: str | Path, name: str, what: str, alternatives: tuple[str, ...] = ("",),
          suffixes: tuple[str, ...] = ("",)) -> Path:
    """The file ``name`` + one of ``suffixes`` in ``root`` (or ``root/<sub>`` for each sub-folder
    in ``alternatives``); a clear error saying where it was looked for otherwise."""
    tried = []
    for sub in alternatives:
        for suffix in suffixes:
            path = Path(root) / sub / (name + suffix)
            if path.is_file():
                return path
            tried.append(str(path))
    raise FileNotFoundError(f"{what}: expected the file {name!r} in {str(root)!r}; "
                            f"looked for {', '.join(tried)}. Nothing is downloaded: put the file there.")


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (gzipped or raw, told by its first two bytes) as a native-endian array."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise ValueError(f"read_idx: {path} looks gzipped but cannot be decompressed: {e}") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES:
        raise ValueError(f"read_idx: {path} is not an IDX file (magic bytes {raw[:4].hex()}, "
                         f"expected 0000 + type code in {[hex(k) for k in IDX_TYPES]} + ndim)")
    dtype, ndim = np.dtype(IDX_TYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"read_idx: {path} is truncated inside its header ({len(raw)} bytes, need {header})")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">i4", count=ndim, offset=4))
    expected = header + dtype.itemsize * int(np.prod(shape))
    if len(raw) != expected:
        raise ValueError(f"read_idx: {path} has {len(raw)} bytes but its header (shape {shape}, "
                         f"dtype {dtype}) needs {expected}")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def mnist(root: str | Path, train: bool = True, transform: Callable | None = None) -> TensorDataset:
    """MNIST or Fashion-MNIST (same file names and format) from the IDX files in ``root``
    (or ``root/raw``, torchvision's layout): images (1, 28, 28) float32 in [0, 1], labels int64."""
    image_name, label_name = MNIST_FILES[train]
    images, labels = (read_idx(_find(root, name, "mnist", ("", "raw"), ("", ".gz")))
                      for name in (image_name, label_name))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"mnist: expected images (N, H, W) and labels (N,), got {images.shape} and {labels.shape}")
    return TensorDataset((images[:, None] / np.float32(255)).astype(np.float32), labels.astype(np.int64),
                         transform=transform)


def fashion_mnist(root: str | Path, train: bool = True, transform: Callable | None = None) -> TensorDataset:
    """Fashion-MNIST: the same files and format as MNIST (class names in FASHION_MNIST_CLASSES)."""
    return mnist(root, train, transform)


class _ArrayStub:
    """Stands in for numpy.ndarray while unpickling: records (shape, dtype, raw bytes)."""

    def __setstate__(self, state: tuple) -> None:
        self.state = state


class _DtypeStub:
    """Stands in for numpy.dtype: records its name (e.g. 'u1')."""

    def __init__(self, name: Any, align: Any = False, copy: Any = True) -> None:
        self.name = name

    def __setstate__(self, state: tuple) -> None:
        self.state = state


def _reconstruct(cls: Any, shape: Any, typecode: Any) -> _ArrayStub:
    return _ArrayStub()


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """Python 3 writes bytes into protocol-2 pickles as _codecs.encode(str, 'latin1')."""
    if encoding != "latin1" or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


class SafeUnpickler(pickle.Unpickler):
    """Unpickles plain data and uint8 arrays only; any other global is refused by name."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"): _reconstruct,
               ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
               ("numpy", "ndarray"): _ArrayStub,
               ("numpy", "dtype"): _DtypeStub,
               ("_codecs", "encode"): _latin1_encode}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}: CIFAR batches hold only "
                                         "dicts, lists, bytes, ints and uint8 arrays") from None


def _to_array(obj: Any, what: str) -> np.ndarray:
    """A recorded _ArrayStub -> np.ndarray, only if it is a C-ordered uint8 array whose bytes fit its shape."""
    if not isinstance(obj, _ArrayStub) or not hasattr(obj, "state"):
        raise ValueError(f"{what}: expected a NumPy array, got {type(obj).__name__}")
    try:
        _, shape, dtype, fortran, raw = obj.state
    except (TypeError, ValueError):
        raise ValueError(f"{what}: malformed array state") from None
    name = getattr(dtype, "name", None)
    name = name.decode("latin1") if isinstance(name, bytes) else name   # Python 2 files give bytes
    if not isinstance(dtype, _DtypeStub) or name not in ("u1", "|u1") or fortran:
        raise ValueError(f"{what}: only C-ordered uint8 arrays are accepted, got dtype "
                         f"{name!r}, fortran={fortran}")
    if isinstance(raw, str):
        raw = raw.encode("latin1")
    shape = tuple(int(s) for s in shape)
    if not isinstance(raw, bytes) or len(raw) != int(np.prod(shape)):
        raise ValueError(f"{what}: array data has {len(raw) if isinstance(raw, bytes) else type(raw).__name__} "
                         f"bytes, shape {shape} needs {int(np.prod(shape))}")
    return np.frombuffer(raw, np.uint8).reshape(shape)


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch -> images (N, 3, 32, 32) uint8, labels (N,) int64."""
    try:
        batch = SafeUnpickler(io.BytesIO(Path(path).read_bytes()), encoding="bytes").load()
    except Exception as e:   # no code runs here, so any failure is a malformed file: say which
        raise ValueError(f"read_cifar_batch: {path} is not a readable CIFAR-10 batch: {e}") from e
    if not isinstance(batch, dict):
        raise ValueError(f"read_cifar_batch: {path} holds a {type(batch).__name__}, expected a dict")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise ValueError(f"read_cifar_batch: {path} lacks the 'data' and 'labels' entries, has {sorted(batch)}")
    data = _to_array(batch["data"], f"read_cifar_batch: {path} 'data'")
    labels = np.asarray(batch["labels"])
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels.dtype.kind not in "iu" or labels.shape != (len(data),):
        raise ValueError(f"read_cifar_batch: {path}: expected data (N, 3072) and N int labels, "
                         f"got data {data.shape} and labels {labels.shape} {labels.dtype}")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def cifar10(root: str | Path, train: bool = True, transform: Callable | None = None) -> TensorDataset:
    """CIFAR-10 from the python batches in ``root`` (or ``root/cifar-10-batches-py``):
    ``data_batch_1`` .. ``data_batch_5`` for training, ``test_batch`` for test.
    images (3, 32, 32) float32 in [0, 1], labels int64 (names in CIFAR10_CLASSES)."""
    parts = [read_cifar_batch(_find(root, name, "cifar10", ("", "cifar-10-batches-py")))
             for name in CIFAR10_FILES[train]]
    images = np.concatenate([p[0] for p in parts]).astype(np.float32) / np.float32(255)
    return TensorDataset(images, np.concatenate([p[1] for p in parts]), transform=transform)
