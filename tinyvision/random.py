"""The global random state: ``manual_seed`` makes every random draw in tinyvision repeatable."""
from __future__ import annotations

from typing import Any

import numpy as np

from tinyvision.kernels import compat

_cpu = np.random.default_rng(0)
_gpu: Any = None


def manual_seed(seed: int) -> None:
    """Seed the CPU generator (and the GPU one when CuPy is there)."""
    global _cpu, _gpu
    _cpu = np.random.default_rng(seed)
    _gpu = compat.cupy.random.default_rng(seed) if compat.gpu_available() else None


def generator(device: str = "cpu"):
    """The ``Generator`` that draws for ``device``."""
    global _gpu
    if compat.check_device(device) == "cuda":
        if _gpu is None:
            _gpu = compat.cupy.random.default_rng(int(_cpu.integers(2**31)))
        return _gpu
    return _cpu


def get_rng_state() -> dict:
    """The CPU generator's state (to store in a checkpoint)."""
    return _cpu.bit_generator.state


def set_rng_state(state: dict) -> None:
    _cpu.bit_generator.state = state


def rand_array(shape: tuple[int, ...], device: str = "cpu", dtype: Any = np.float32):
    """Uniform [0, 1) raw array on ``device``."""
    return generator(device).random(shape, dtype=dtype)


def randn_array(shape: tuple[int, ...], device: str = "cpu", dtype: Any = np.float32):
    """Standard-normal raw array on ``device``."""
    return generator(device).standard_normal(shape, dtype=dtype)
