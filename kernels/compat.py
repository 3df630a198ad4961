"""The one place where NumPy and CuPy differ.

Everything above this module calls ``xp = array_module(x)`` and then uses ``xp`` as if it
were NumPy. The few calls that the two libraries spell differently live here, so that no
op has to branch on the device.
"""
from __future__ import annotations

from typing import Any

import numpy as np

try:  # CuPy is optional: without it (or without a CUDA device) everything runs on the CPU.
    import cupy  # type: ignore[import-not-found]
    import cupyx  # type: ignore[import-not-found]

    try:
        _GPU_REASON = "" if cupy.cuda.runtime.getDeviceCount() > 0 else "no CUDA device"
    except Exception as exc:  # the driver is missing or broken
        _GPU_REASON = f"CUDA unavailable: {exc}"
except ImportError:
    cupy = None
    cupyx = None
    _GPU_REASON = "CuPy is not installed (pip install tinyvision[gpu])"

DEVICES = ("cpu", "cuda")


def gpu_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    return _GPU_REASON == ""


def gpu_unavailable_reason() -> str:
    """Why the GPU path is off ('' when it is on); GPU tests skip with this text."""
    return _GPU_REASON


def array_module(*arrays: Any):
    """``numpy`` or ``cupy``: the module that owns these arrays (NumPy for scalars)."""
    if cupy is not None:
        for a in arrays:
            if isinstance(a, cupy.ndarray):
                return cupy
    return np


def is_array(a: Any) -> bool:
    return isinstance(a, np.ndarray) or (cupy is not None and isinstance(a, cupy.ndarray))


def device_of(a: Any) -> str:
    """'cuda' for a CuPy array, else 'cpu'."""
    return "cuda" if cupy is not None and isinstance(a, cupy.ndarray) else "cpu"


def check_device(device: str) -> str:
    """Normalise 'cpu' / 'cuda' / 'cuda:0' and refuse anything else, naming the choices."""
    name = str(device).split(":")[0]
    if name not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if name == "cuda" and not gpu_available():
        raise RuntimeError(f"device 'cuda' requested but {_GPU_REASON}")
    return name


def to_device(a: Any, device: str):
    """Copy an array to 'cpu' (NumPy) or 'cuda' (CuPy); no copy when it is already there."""
    device = check_device(device)
    if device == device_of(a):
        return a
    return cupy.asarray(a) if device == "cuda" else cupy.asnumpy(a)


def to_numpy(a: Any) -> np.ndarray:
    """A NumPy array, copied from the GPU when needed."""
    return cupy.asnumpy(a) if device_of(a) == "cuda" else np.asarray(a)


def scatter_add(target, index, values) -> None:
    """``target[index] += values`` with repeated indices summed (NumPy's ``add.at``)."""
    if device_of(target) == "cuda":
        cupyx.scatter_add(target, index, values)
    else:
        np.add.at(target, index, values)


def erf(x):
    """Elementwise error function (scipy.special on the CPU, cupyx on the GPU)."""
    if device_of(x) == "cuda":
        import cupyx.scipy.special as cusp

        return cusp.erf(x)
    import scipy.special

    return scipy.special.erf(x)
