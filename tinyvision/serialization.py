"""``tinyvision.save`` / ``tinyvision.load``: state_dicts and checkpoints without pickle.

The object is a dict, possibly nested (a checkpoint: ``{"model": state_dict, "optimizer":
{...}, "epoch": 3}``), whose leaves are arrays (NumPy, tinyvision Tensors, torch tensors) or
JSON values (numbers, strings, bools, None, lists of those). The file format follows the suffix:

    .npz          a NumPy zip archive, one ``.npy`` entry per array leaf, never pickled
    .safetensors  the Hugging Face format (needs the ``safetensors`` package)
    .pt / .pth    load only, through ``torch.load(weights_only=True)`` when PyTorch is installed

Both writable formats store a flat list of arrays, so the nesting goes into the entry names
(``"model/conv1.weight"``: '/' joins the levels, which is why a key may not contain '/'; int
keys, as in an optimizer's ``state``, are written as strings and load back as strings), and
one metadata entry (``__tinyvision__``, JSON) records the JSON leaves and the order of all
leaves. A file without that entry (``np.savez`` output, a Hugging Face ``model.safetensors``)
loads as a flat dict of its arrays.

``load`` returns NumPy arrays (``Module.load_state_dict`` takes them as they are). ``save``
writes a temporary file next to the target and renames it over the target, so a crash during
the write leaves the previous file intact.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from typing import Any, Mapping

import numpy as np

from tinyvision.autograd.tensor import Tensor
from tinyvision.kernels import compat

META_KEY = "__tinyvision__"
FORMAT_VERSION = 1
_SEP = "/"
_SUFFIXES = (".npz", ".safetensors", ".pt", ".pth")


def _is_torch_tensor(value: Any) -> bool:
    """Recognise a torch tensor without importing torch (it is optional)."""
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


def _torch_to_numpy(t: Any) -> np.ndarray:
    t = t.detach().cpu()
    return (t.float() if str(t.dtype) == "torch.bfloat16" else t).numpy()  # NumPy has no bfloat16


def as_array(value: Any) -> Any:
    """The raw array (NumPy, or CuPy left on its device) behind a Tensor, an array, a NumPy
    scalar or a torch tensor; None for anything else."""
    if isinstance(value, Tensor):
        return value.data
    if compat.is_array(value):
        return value
    if isinstance(value, np.generic):
        return np.asarray(value)
    if _is_torch_tensor(value):
        return _torch_to_numpy(value)
    return None


def _flatten(obj: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any], list[str]]:
    """Split a nested dict into (arrays by joined name, JSON leaves by joined name, order)."""
    arrays: dict[str, np.ndarray] = {}
    values: dict[str, Any] = {}
    order: list[str] = []

    def walk(d: Mapping[str, Any], prefix: str) -> None:
        seen: set[str] = set()
        for key, value in d.items():
            # int keys (an optimizer's per-parameter "state", as in torch) are stored as their
            # decimal strings and load back as strings; Optimizer.load_state_dict takes both
            if isinstance(key, int) and not isinstance(key, bool):
                key = str(key)
            if not isinstance(key, str) or _SEP in key or key == META_KEY or key in seen:
                raise ValueError(f"save: keys must be strings or ints, unique as strings, without {_SEP!r} "
                                 f"and not {META_KEY!r}; got {key!r} (in {prefix or 'the top level'})")
            seen.add(key)
            name = prefix + key
            if isinstance(value, Mapping) and value:
                walk(value, name + _SEP)
                continue
            order.append(name)
            array = as_array(value)
            if array is not None:
                array = compat.to_numpy(array)
                if array.dtype.kind not in "biufc":
                    raise TypeError(f"save: array {name!r} has dtype {array.dtype}, which cannot be "
                                    "stored without pickling")
                arrays[name] = np.asarray(array, order="C")  # safetensors needs C order
                continue
            try:  # dicts only reach here when empty; tuples become lists
                json.dumps(value, allow_nan=True)
            except TypeError:
                raise TypeError(f"save: value {name!r} is a {type(value).__name__}; leaves must be arrays, "
                                "Tensors or JSON values (numbers, strings, bools, None, lists)") from None
            values[name] = value

    if not isinstance(obj, Mapping):
        raise TypeError(f"save: expected a dict (a state_dict or a checkpoint), got {type(obj).__name__}")
    walk(obj, "")
    return arrays, values, order


def _unflatten(arrays: Mapping[str, np.ndarray], meta: dict | None) -> dict[str, Any]:
    """Inverse of :func:`_flatten`; without tinyvision metadata, the flat dict of arrays."""
    if meta is None:
        return dict(arrays)
    out: dict[str, Any] = {}
    values = meta["values"]
    for name in meta["order"]:
        *parents, leaf = name.split(_SEP)
        d = out
        for p in parents:
            d = d.setdefault(p, {})
        d[leaf] = arrays[name] if name in arrays else values[name]
    return out


def _npz_bytes(arrays: Mapping[str, np.ndarray], meta: str) -> bytes:
    """An .npz archive (what ``np.savez`` writes), built entry by entry so that any key name
    works (``np.savez(**arrays)`` would clash with its own argument names)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, array in {**arrays, META_KEY: np.array(meta)}.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, array, allow_pickle=False)
    return buffer.getvalue()


def _safetensors_bytes(arrays: Mapping[str, np.ndarray], meta: str) -> bytes:
    import safetensors.numpy

    return safetensors.numpy.save(dict(arrays), metadata={META_KEY: meta})


def _remove_orphans(folder: str, name: str) -> None:
    """Delete the temporary files that earlier saves to ``name`` left behind when their process
    was killed mid-write (``.NAME.PID.XXXX.tmp``, PID no longer running; files of the older
    ``.NAME.XXXX.tmp`` form once an hour old). A save still running elsewhere keeps its file."""
    import glob
    import time

    for tmp in glob.glob(os.path.join(glob.escape(folder), f".{glob.escape(name)}.*.tmp")):
        middle = os.path.basename(tmp)[len(name) + 2:-len(".tmp")].split(".")
        try:
            if middle[0].isdigit() and len(middle) == 2:
                pid = int(middle[0])
                if pid != os.getpid():
                    try:
                        os.kill(pid, 0)  # signal 0: only asks whether the process exists
                        continue
                    except ProcessLookupError:
                        pass
                    except PermissionError:  # it exists (another user's)
                        continue
            elif time.time() - os.path.getmtime(tmp) < 3600:
                continue
            os.unlink(tmp)
        except OSError:  # gone already, or not ours to remove: leave it
            pass


def _write_atomic(path: str, payload: bytes) -> None:
    """Write to a temporary file in the target's folder, flush it to disk, then rename it over
    ``path`` (an atomic replace on POSIX and Windows): readers see the old file or the new one.
    A save killed before the rename leaves its temporary file; the next save to ``path``
    removes it (``_remove_orphans``)."""
    folder = os.path.dirname(os.path.abspath(path))
    _remove_orphans(folder, os.path.basename(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.{os.getpid()}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private (0600); give it a normal file's mode
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _suffix(path: str, allowed: tuple[str, ...], what: str) -> str:
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in allowed:
        raise ValueError(f"{what}: unsupported file type {suffix or '(none)'!r} for {path!r}; use one of {allowed}")
    return suffix


def save(obj: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Write ``obj`` (a possibly nested dict) to ``path``, a ``.npz`` or ``.safetensors`` file."""
    path = os.fspath(path)
    suffix = _suffix(path, (".npz", ".safetensors"), "save")
    arrays, values, order = _flatten(obj)
    meta = json.dumps({"version": FORMAT_VERSION, "order": order, "values": values})
    payload = (_npz_bytes if suffix == ".npz" else _safetensors_bytes)(arrays, meta)
    _write_atomic(path, payload)


# A zip member can inflate ~1000x (1 MB of zeros -> 1 GiB): refuse an archive whose members
# would expand past both this size and this multiple of the file's size, before inflating it.
MAX_INFLATED_BYTES = 256 << 20
MAX_INFLATE_RATIO = 100


def _check_inflated_size(path: str) -> None:
    """The members' declared sizes (zipfile never inflates a member past its declared size)."""
    with zipfile.ZipFile(path) as zf:
        total = sum(info.file_size for info in zf.infolist())
    on_disk = os.path.getsize(path)
    if total > MAX_INFLATED_BYTES and total > MAX_INFLATE_RATIO * on_disk:
        raise ValueError(f"load: {path!r} ({on_disk:,} bytes) would inflate to {total:,} bytes, over "
                         f"{MAX_INFLATE_RATIO}x its size (a zip bomb?); refusing to read it. If you trust it, raise "
                         "tinyvision.serialization.MAX_INFLATE_RATIO")


def _load_npz(path: str) -> tuple[dict[str, np.ndarray], str | None]:
    _check_inflated_size(path)
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}  # reads (and CRC-checks) all
    meta = arrays.pop(META_KEY, None)
    return arrays, None if meta is None else str(meta)


def _load_safetensors(path: str) -> tuple[dict[str, np.ndarray], str | None]:
    from safetensors import safe_open

    with safe_open(path, framework="numpy") as f:
        meta = (f.metadata() or {}).get(META_KEY)
        return {name: f.get_tensor(name) for name in f.keys()}, meta


def _load_torch(path: str) -> Any:
    try:
        import torch
    except ImportError:
        raise ImportError(f"load: reading {path!r} needs PyTorch (pip install torch); or convert it once "
                          "with tinyvision.save(torch.load(...), 'file.npz') where PyTorch is installed") from None

    def to_numpy(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return _torch_to_numpy(value)
        if isinstance(value, Mapping):
            return {k: to_numpy(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(to_numpy(v) for v in value)
        return value

    return to_numpy(torch.load(path, map_location="cpu", weights_only=True))


def load(path: str | os.PathLike) -> dict[str, Any]:
    """Read a file written by :func:`save` (or a plain .npz / .safetensors / PyTorch
    checkpoint); arrays come back as NumPy arrays, nesting as nested dicts."""
    path = os.fspath(path)
    suffix = _suffix(path, _SUFFIXES, "load")
    if not os.path.exists(path):
        raise FileNotFoundError(f"load: no such file {path!r}")
    try:
        if suffix in (".pt", ".pth"):
            return _load_torch(path)
        arrays, meta = (_load_npz if suffix == ".npz" else _load_safetensors)(path)
        return _unflatten(arrays, None if meta is None else json.loads(meta))
    except (ImportError, FileNotFoundError):
        raise
    except ValueError as exc:
        if str(exc).startswith("load: "):  # already says what is wrong with the file
            raise
        raise ValueError(f"load: {path!r} is not a readable {suffix} file (corrupt or truncated?): "
                         f"{type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # zipfile, NumPy, safetensors and torch each raise their own types
        raise ValueError(f"load: {path!r} is not a readable {suffix} file (corrupt or truncated?): "
                         f"{type(exc).__name__}: {exc}") from exc
