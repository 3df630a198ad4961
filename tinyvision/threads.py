"""How many threads tinyvision's CPU work uses: Numba's parallel kernels and BLAS together.

On two cores the two thread pools take turns: a conv step alternates Numba loops (im2col,
col2im) with OpenBLAS GEMMs. OpenBLAS's idle workers spin for ``2**OPENBLAS_THREAD_TIMEOUT``
cycles after every GEMM (default 2**28, about 0.1 s) and hold the core the next Numba kernel
needs (tinyvision/kernels/cpu/threading.py has the measurements). OpenBLAS reads that variable
once, when NumPy loads it, so this module, imported by ``tinyvision/__init__.py`` before
anything imports NumPy, sets it to 10 unless the user chose a value.

When NumPy was imported first (``import numpy as np`` above ``import tinyvision as tv``) it
is too late for the variable, and the spinning made a small CNN's training step 7x slower
(131 vs 19 ms; ResNet-18 and ViT-Tiny 16x16, batch 32: 1.5x). Then BLAS gets one thread: its
workers have no idle siblings left to spin, and on these models one BLAS thread beside two
Numba threads was as fast as two sleeping BLAS threads (20 vs 19 ms, 399 vs 385 ms, 241 vs
245 ms).

Since 2026-12-05 the convolution and attention kernels no longer depend on this: their GEMMs
are split over Numba's threads, each part a single-threaded BLAS call (kernels/cpu/blas.py,
docs/speed.md), so they use every core in either import order. What still runs on NumPy's
BLAS threads (and so on one thread when NumPy came first) is every other matmul, the linear
layers' included.
"""
from __future__ import annotations

import os
import sys

# Decided before the setdefault below: True when OpenBLAS has already read its variables.
BLAS_LOADED_TOO_EARLY: bool = "numpy" in sys.modules and "OPENBLAS_THREAD_TIMEOUT" not in os.environ
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "10")


def blas_threads(n: int) -> int:
    """The BLAS thread count that goes with ``n`` Numba threads under this policy."""
    return 1 if BLAS_LOADED_TOO_EARLY else n


def set_num_threads(n: int) -> None:
    """Use ``n`` threads for Numba's parallel kernels and for BLAS, as ``torch.set_num_threads``
    does for PyTorch (BLAS gets one thread when NumPy was imported before tinyvision)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: n must be a positive int, got {n!r}")
    import numba
    from threadpoolctl import threadpool_limits

    # Numba fixes its threading layer when its pool starts, which set_num_threads does: choose
    # the layer (workqueue, kernels/cpu/threading.py) first.
    import tinyvision.kernels.cpu.threading  # noqa: F401

    if n > numba.config.NUMBA_NUM_THREADS:
        raise ValueError(f"set_num_threads: n={n} exceeds Numba's pool of {numba.config.NUMBA_NUM_THREADS} "
                         "threads (NUMBA_NUM_THREADS, the number of CPUs by default)")
    numba.set_num_threads(n)
    threadpool_limits(blas_threads(n), user_api="blas")


if BLAS_LOADED_TOO_EARLY:  # NumPy, hence OpenBLAS, is loaded, so its threads can be limited now
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")
