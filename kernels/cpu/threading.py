"""One thread policy for Numba and BLAS together.

A conv step alternates Numba ``parallel=True`` loops (im2col, col2im) with OpenBLAS GEMMs.
Numba's default ``omp`` layer keeps its idle threads spinning, and so does OpenBLAS: on two
cores each hand-over then costs milliseconds while the pools fight for the cores. Numba's
``workqueue`` layer sleeps when idle, which removed that fight (a NumPy+Numba conv fwd+bwd
prototype went from 80 to 63 ms on a quiet 2-core machine; docs/convolution.md has the
measurement of this rung). Its price is a slightly larger
launch cost, which only tiny kernels notice.

OpenBLAS's side of the fight: its idle workers spin for ``2**OPENBLAS_THREAD_TIMEOUT`` cycles
(default 2**28, about 0.1 s) after each GEMM before they sleep, so the next Numba kernel found
one core taken: the attention softmax after a GEMM took 8.4 ms instead of 0.1 ms, and im2col
in a ResNet-18 step 2.8 ms instead of 0.4 ms. ``tinyvision/threads.py`` sets the variable to
10 (when the user has not) before NumPy loads OpenBLAS, or gives BLAS a single thread when
NumPy was imported first; a ResNet-18 (16x16, batch 32) training step went from 0.89 to
0.60 s and a ViT-Tiny one from 0.64 to 0.42 s on 2 cores.

Two caveats of workqueue, both measured or documented by Numba: an exception raised inside a
``prange`` loop is silently dropped (so arguments are validated before any kernel runs, and
the bounds-check test uses the omp layer), and parallel kernels must not be launched from
several Python threads at once. Set ``NUMBA_THREADING_LAYER=omp`` (or ``tbb``) to change it.

Since the OpenBLAS fix the layers are closer. On 2026-12-01 (2 idle cores; training steps at
batch 32: a small CNN on 32x32, ResNet-18 and ViT-Tiny/4 on 16x16; then a ResNet-18 224x224
forward at batch 8) workqueue took 25 / 444 / 252 / 295 ms, omp 20 / 407 / 249 / 368 ms, and
omp with ``OMP_WAIT_POLICY=PASSIVE`` 23 / 417 / 246 / 247 ms: no layer wins everywhere, and
workqueue stays, for its never-worst showing and its sleeping threads.

Importing this module picks ``workqueue`` unless the user chose a layer with the
``NUMBA_THREADING_LAYER`` environment variable, and as long as Numba has not started its
threads yet (the layer is fixed at the first parallel launch, or at ``numba.set_num_threads``).
Every Numba kernel module imports it before compiling anything, and so does
``tinyvision.set_num_threads``.
"""
from __future__ import annotations

import os

import numba
from numba.np.ufunc import parallel as _numba_parallel

DEFAULT_LAYER = "workqueue"

if "NUMBA_THREADING_LAYER" not in os.environ and not _numba_parallel._is_initialized:
    numba.config.THREADING_LAYER = DEFAULT_LAYER


def threading_layer() -> str:
    """The layer Numba uses (or will use at its first parallel launch)."""
    if _numba_parallel._is_initialized:
        return numba.threading_layer()
    return str(numba.config.THREADING_LAYER)
