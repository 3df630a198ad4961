"""tinyvision.save / tinyvision.load: round trips, files from other tools, atomic writes, and
clear errors on corrupt or truncated files."""
import os

import numpy as np
import pytest
import safetensors.numpy
import torch

import tinyvision as tv
import tinyvision.nn as nn
from tinyvision import serialization


def checkpoint():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    return {
        "model": model.state_dict(),
        "optimizer": {"state": {"0": {"momentum_buffer": np.arange(6.0).reshape(2, 3)}}, "lr": 0.1,
                      "param_groups": [{"lr": 0.1, "betas": [0.9, 0.999]}]},
        "epoch": 7, "name": "run-1", "done": False, "note": None, "empty": {},
        "torch_leaf": torch.arange(4, dtype=torch.float64), "scalar": np.float32(2.5),
        "flags": np.array([True, False]), "ints": np.arange(3, dtype=np.int32),
    }


def assert_same(a, b, path="root"):
    assert type(a) is type(b) or isinstance(a, dict), (path, type(a), type(b))
    if isinstance(b, dict):
        assert list(a) == list(b), path  # key order survives
        for k in b:
            assert_same(a[k], b[k], f"{path}/{k}")
    elif isinstance(b, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, path
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b, path


def expected(obj):
    """What load returns: every array-like leaf as a NumPy array, the rest unchanged."""
    if isinstance(obj, dict):
        return {k: expected(v) for k, v in obj.items()}
    if isinstance(obj, tv.Tensor):
        return obj.numpy()
    if isinstance(obj, torch.Tensor):
        return obj.numpy()
    if isinstance(obj, np.generic):
        return np.asarray(obj)
    return obj


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_round_trip_nested_checkpoint(tmp_path, suffix):
    obj = checkpoint()
    path = tmp_path / f"ckpt{suffix}"
    tv.save(obj, path)
    assert_same(tv.load(path), expected(obj))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_state_dict_round_trip_loads_into_model(tmp_path, suffix):
    src, dst = nn.Linear(5, 2), nn.Linear(5, 2)
    tv.save(src.state_dict(), tmp_path / f"w{suffix}")
    dst.load_state_dict(tv.load(tmp_path / f"w{suffix}"))
    np.testing.assert_array_equal(dst.weight.detach().numpy(), src.weight.detach().numpy())


def test_npz_is_a_plain_unpickled_numpy_archive(tmp_path):
    tv.save({"a": {"b": np.ones(2)}, "c": 1}, tmp_path / "x.npz")
    with np.load(tmp_path / "x.npz", allow_pickle=False) as z:  # readable by NumPy alone
        assert sorted(z.files) == ["__tinyvision__", "a/b"]


def test_files_from_other_tools_load_as_flat_dicts(tmp_path):
    np.savez(tmp_path / "plain.npz", w=np.ones(3), b=np.zeros(2))
    assert_same(tv.load(tmp_path / "plain.npz"), {"w": np.ones(3), "b": np.zeros(2)})
    safetensors.numpy.save_file({"layer.weight": np.ones((2, 2), np.float32)}, str(tmp_path / "hf.safetensors"))
    assert_same(tv.load(tmp_path / "hf.safetensors"), {"layer.weight": np.ones((2, 2), np.float32)})


def test_pytorch_checkpoint_loads_as_numpy(tmp_path):
    theirs = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    torch.save({"model": theirs.state_dict(), "epoch": 3, "half": torch.ones(2, dtype=torch.bfloat16)},
               tmp_path / "ckpt.pth")
    loaded = tv.load(tmp_path / "ckpt.pth")
    assert loaded["epoch"] == 3 and loaded["half"].dtype == np.float32
    ours = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    ours.load_state_dict(loaded["model"])
    np.testing.assert_array_equal(ours[0].weight.detach().numpy(), theirs[0].weight.detach().numpy())


def test_failed_save_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    tv.save({"w": np.ones(3)}, path)
    before = path.read_bytes()

    def crash_midway(fd):
        raise OSError("disk full (simulated)")

    real_fsync = os.fsync
    monkeypatch.setattr(serialization.os, "fsync", crash_midway)  # the payload is half on disk here
    with pytest.raises(OSError, match="simulated"):
        tv.save({"w": np.zeros(1000)}, path)
    monkeypatch.setattr(serialization.os, "fsync", real_fsync)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.npz"]
    assert_same(tv.load(path), {"w": np.ones(3)})


@pytest.mark.parametrize("suffix", [".npz", ".safetensors", ".pt"])
@pytest.mark.parametrize("damage", ["truncate", "header", "data"])
def test_corrupt_or_truncated_file_names_the_path(tmp_path, suffix, damage):
    if damage == "data" and suffix != ".npz":
        pytest.skip("only .npz (zip CRC-32) is checksummed: safetensors stores none and torch.load "
                    "does not check it, so changed bytes inside array data go unnoticed")
    path = tmp_path / f"bad{suffix}"
    if suffix == ".pt":
        torch.save({"w": torch.arange(1000.0)}, path)
    else:
        tv.save({"w": np.arange(1000.0), "meta": 1}, path)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    else:  # overwrite 64 bytes at the start (headers) or in the middle (array data; CRC-checked)
        at = 8 if damage == "header" else len(data) // 2
        path.write_bytes(data[:at] + b"\xff" * 64 + data[at + 64:])
    with pytest.raises(ValueError, match=f"bad{suffix}.*corrupt or truncated"):
        tv.load(path)


def test_bad_input_is_explained(tmp_path):
    with pytest.raises(ValueError, match="unsupported file type '.pkl'"):
        tv.save({"a": np.ones(1)}, tmp_path / "x.pkl")
    with pytest.raises(ValueError, match="'.pt'"):
        tv.save({"a": np.ones(1)}, tmp_path / "x.pt")  # writing .pt would need pickle
    with pytest.raises(ValueError, match="'a/b'"):
        tv.save({"a/b": np.ones(1)}, tmp_path / "x.npz")
    with pytest.raises(TypeError, match="'model/fn'"):
        tv.save({"model": {"fn": print}}, tmp_path / "x.npz")
    with pytest.raises(TypeError, match="pickling"):
        tv.save({"o": np.array([object()])}, tmp_path / "x.npz")
    with pytest.raises(TypeError, match="expected a dict"):
        tv.save([np.ones(1)], tmp_path / "x.npz")
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        tv.load(tmp_path / "nope.npz")
    assert list(tmp_path.iterdir()) == []


def test_torch_and_safetensors_are_imported_lazily(tmp_path):
    """Weights load from .npz without PyTorch: nothing on that path may import torch."""
    import subprocess
    import sys

    code = ("import sys, numpy as np, tinyvision as tv, tinyvision.nn as nn\n"
            f"tv.save(nn.Linear(2, 2).state_dict(), {str(tmp_path / 'w.npz')!r})\n"
            f"nn.Linear(2, 2).load_state_dict(tv.load({str(tmp_path / 'w.npz')!r}))\n"
            "print(sorted(m for m in ('torch', 'safetensors') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_int_keys_and_generator_state_round_trip(tmp_path, suffix):
    """An optimizer's ``state`` has int keys (torch's layout): they come back as strings, which
    Optimizer.load_state_dict accepts. A PCG64 state holds 128-bit ints: they come back exact."""
    torch_opt = torch.optim.SGD([torch.nn.Parameter(torch.ones(2, 3)), torch.nn.Parameter(torch.ones(3))],
                                lr=0.1, momentum=0.9)
    for p in torch_opt.param_groups[0]["params"]:
        p.grad = torch.full_like(p, 0.5)
    torch_opt.step()
    opt_state = {k: {"momentum_buffer": v["momentum_buffer"].numpy()} for k, v in torch_opt.state_dict()["state"].items()}
    assert list(opt_state) == [0, 1]
    rng = np.random.default_rng(12345)
    rng.random(7)
    obj = {"optimizer": {"state": opt_state}, "rng": rng.bit_generator.state}
    assert obj["rng"]["state"]["state"] > 2**64  # really a big int
    path = tmp_path / f"ckpt{suffix}"
    tv.save(obj, path)
    loaded = tv.load(path)
    assert list(loaded["optimizer"]["state"]) == ["0", "1"]
    for k, v in opt_state.items():
        np.testing.assert_array_equal(loaded["optimizer"]["state"][str(k)]["momentum_buffer"], v["momentum_buffer"])
    assert loaded["rng"] == obj["rng"]
    restored = np.random.default_rng()
    restored.bit_generator.state = loaded["rng"]
    np.testing.assert_array_equal(restored.random(5), rng.random(5))
    with pytest.raises(ValueError, match="unique as strings.*'1'"):
        tv.save({1: np.ones(1), "1": np.ones(1)}, path)


def test_save_removes_temporary_files_that_killed_saves_left(tmp_path) -> None:
    """A save killed before its rename leaves .NAME.PID.XXXX.tmp; the next save to NAME removes
    those of processes that are gone (and old ones of the pid-less form), never a live one's."""
    import os
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()  # a pid that has exited
    dead = tmp_path / f".ckpt.npz.{gone}.k2j4.tmp"
    legacy = tmp_path / ".ckpt.npz.x81a.tmp"
    live = tmp_path / f".ckpt.npz.{os.getppid()}.a0b1.tmp"  # our parent: alive
    other = tmp_path / f".other.npz.{gone}.zz11.tmp"  # another file's: not ours to touch
    for f in (dead, legacy, live, other):
        f.write_bytes(b"partial")
    os.utime(legacy, (0, 0))
    tv.save({"w": np.ones(3)}, tmp_path / "ckpt.npz")
    assert not dead.exists() and not legacy.exists()
    assert live.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".ckpt")) == [live.name]


def test_an_npz_that_would_inflate_past_the_limit_is_refused_before_inflating(tmp_path, monkeypatch) -> None:
    import zipfile

    from tinyvision import serialization

    monkeypatch.setattr(serialization, "MAX_INFLATED_BYTES", 1 << 20)
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:  # 8 MiB of zeros in ~8 KB
        with zf.open("a.npy", "w") as f:
            np.lib.format.write_array(f, np.zeros(1 << 20))
    assert bomb.stat().st_size < 100_000
    with pytest.raises(ValueError, match=r"would inflate to 8,388,7\d\d bytes.*zip bomb"):
        tv.load(bomb)
    np.savez(tmp_path / "plain.npz", a=np.zeros(1 << 20))  # stored, not compressed: 1x, fine
    assert tv.load(tmp_path / "plain.npz")["a"].shape == (1 << 20,)
