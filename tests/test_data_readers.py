"""MNIST IDX and CIFAR-10 readers on tiny files written here; corrupt and hostile files."""
import gzip
import os
import pickle
import struct

import numpy as np
import pytest

from tinyvision.data import cifar10, fashion_mnist, mnist, read_cifar_batch, read_idx

rng = np.random.default_rng(0)


def idx_bytes(array: np.ndarray, code: int) -> bytes:
    """The IDX format written out by hand: 0, 0, type code, ndim, big-endian dims, big-endian data."""
    big = array.astype(array.dtype.newbyteorder(">"))
    return bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape) + big.tobytes()


@pytest.mark.parametrize("code,dtype", [(0x08, np.uint8), (0x0B, np.int16), (0x0D, np.float32), (0x0E, np.float64)])
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_types(tmp_path, code, dtype, gz):
    a = (rng.random((3, 4, 5)) * 100).astype(dtype)
    raw = idx_bytes(a, code)
    path = tmp_path / "x.idx"
    path.write_bytes(gzip.compress(raw) if gz else raw)
    out = read_idx(path)
    assert out.dtype == dtype and out.dtype.isnative
    np.testing.assert_array_equal(out, a)


@pytest.mark.parametrize("sub", ["", "raw"])
def test_mnist_folder(tmp_path, sub):
    (tmp_path / sub).mkdir(exist_ok=True)
    images = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5, 9], dtype=np.uint8)
    (tmp_path / sub / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images, 0x08)))
    (tmp_path / sub / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(labels, 0x08))
    ds = mnist(tmp_path, train=False)
    img, label = ds[2]
    assert img.shape == (1, 28, 28) and img.dtype == np.float32 and label == 4
    np.testing.assert_allclose(img[0], images[2] / 255.0, rtol=1e-6)
    assert fashion_mnist(tmp_path, train=False)[5][1] == 9      # same files, same format
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.*Nothing is downloaded"):
        mnist(tmp_path, train=True)


def test_corrupt_idx_files(tmp_path):
    good = idx_bytes(np.zeros((2, 3), np.uint8), 0x08)
    cases = {"magic": (b"\x01\x02" + good[2:], "not an IDX file"),
             "truncated": (good[:-1], r"has 17 bytes but its header \(shape \(2, 3\), dtype uint8\) needs 18"),
             "header": (good[:6], "truncated inside its header"),
             "gzip": (b"\x1f\x8b" + b"junk", "cannot be decompressed")}
    for name, (raw, message) in cases.items():
        (tmp_path / name).write_bytes(raw)
        with pytest.raises(ValueError, match=message):
            read_idx(tmp_path / name)


def cifar_dict(n: int, seed: int):
    r = np.random.default_rng(seed)
    return {b"batch_label": b"tiny", b"labels": r.integers(0, 10, n).tolist(),
            b"data": r.integers(0, 256, (n, 3072), dtype=np.uint8), b"filenames": [b"a.png"] * n}


def py2_pickle(data: np.ndarray, labels: list) -> bytes:
    """A batch pickled as Python 2's cPickle wrote CIFAR-10 (protocol 2, str as SHORT_BINSTRING /
    BINSTRING, numpy.core), composed opcode by opcode, since Python 3 cannot write this."""
    s = lambda b: b"U" + bytes([len(b)]) + b                                   # noqa: E731 SHORT_BINSTRING
    i4 = lambda v: b"J" + struct.pack("<i", v)                                 # noqa: E731 BININT
    dtype = b"cnumpy\ndtype\n" + s(b"u1") + b"K\x00K\x01\x87R" + \
        b"(K\x03" + s(b"|") + b"NNN" + i4(-1) + i4(-1) + b"K\x00tb"           # dtype state, BUILD
    array = b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + s(b"b") + b"\x87R" + \
        b"(K\x01" + i4(data.shape[0]) + i4(data.shape[1]) + b"\x86" + dtype + b"\x89" + \
        b"T" + struct.pack("<i", data.nbytes) + data.tobytes() + b"tb"        # ndarray state, BUILD
    label_list = b"](" + b"".join(b"K" + bytes([v]) for v in labels) + b"e"
    return b"\x80\x02}(" + s(b"data") + array + s(b"labels") + label_list + b"u."


@pytest.mark.parametrize("protocol", [2, 4, "py2"])
def test_read_cifar_batch(tmp_path, protocol):
    d = cifar_dict(5, 1)
    raw = py2_pickle(d[b"data"], d[b"labels"]) if protocol == "py2" else pickle.dumps(d, protocol=protocol)
    (tmp_path / "b").write_bytes(raw)
    images, labels = read_cifar_batch(tmp_path / "b")
    assert images.shape == (5, 3, 32, 32) and images.dtype == np.uint8 and labels.dtype == np.int64
    np.testing.assert_array_equal(images.reshape(5, -1), d[b"data"])
    np.testing.assert_array_equal(labels, d[b"labels"])


def test_cifar10_folder(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    parts = [cifar_dict(2, s) for s in range(6)]
    for i in range(5):
        (folder / f"data_batch_{i + 1}").write_bytes(pickle.dumps(parts[i], protocol=2))
    (folder / "test_batch").write_bytes(pickle.dumps(parts[5], protocol=2))
    train, test = cifar10(tmp_path), cifar10(tmp_path, train=False)
    assert len(train) == 10 and len(test) == 2
    img, label = train[7]   # batch 4, row 1
    assert img.shape == (3, 32, 32) and img.dtype == np.float32 and label == parts[3][b"labels"][1]
    np.testing.assert_allclose(img.ravel(), parts[3][b"data"][1] / 255.0, rtol=1e-6)
    (folder / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        cifar10(tmp_path)


class Hostile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_cifar_reader_refuses_code_and_odd_arrays(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "evil").write_bytes(pickle.dumps({b"data": Hostile(marker), b"labels": []}, protocol=2))
    with pytest.raises(ValueError, match=r"refusing to load global (posix|nt)\.system"):
        read_cifar_batch(tmp_path / "evil")
    assert not marker.exists()
    floats = cifar_dict(2, 0)
    floats[b"data"] = floats[b"data"].astype(np.float32)
    (tmp_path / "float").write_bytes(pickle.dumps(floats, protocol=2))
    with pytest.raises(ValueError, match="only C-ordered uint8 arrays"):
        read_cifar_batch(tmp_path / "float")
    good = pickle.dumps(cifar_dict(2, 0), protocol=2)
    (tmp_path / "cut").write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="not a readable CIFAR-10 batch"):
        read_cifar_batch(tmp_path / "cut")
    (tmp_path / "list").write_bytes(pickle.dumps([1, 2], protocol=2))
    with pytest.raises(ValueError, match="holds a list, expected a dict"):
        read_cifar_batch(tmp_path / "list")
