"""BLAS called from inside Numba kernels, one thread per call.

``np.dot`` inside an ``@njit`` function calls the BLAS that SciPy links (through
``scipy.linalg.cython_blas``; Numba has no other), a library separate from NumPy's OpenBLAS
and with its own thread pool. The kernels that use it (Winograd's tile GEMMs, the attention
heads and flash tiles) call it from every ``prange`` thread at once, each on its own matrix.
Left at its default thread count, each of those calls would wake that pool too: 2 Numba
threads x 2 BLAS threads on 2 cores, and a fork-join per GEMM. Held to one thread while the
kernel runs, the cores belong to Numba's pool alone; the limit is lifted afterwards, so a
user's own SciPy calls keep their threads.
"""
from __future__ import annotations

from typing import Any

_controller = None


def one_blas_thread() -> Any:
    """A context manager: every loaded BLAS library on one thread inside the block (~10 us)."""
    global _controller
    if _controller is None:
        import scipy.linalg.cython_blas  # noqa: F401  (load the library Numba's np.dot calls)
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")


# --------------------------------------------------------------------------- GEMMs over Numba's threads
# The im2col convolution's three GEMMs, split by rows over Numba's threads, each part one
# single-threaded BLAS call. With NumPy imported before tinyvision NumPy's OpenBLAS has one
# thread (tinyvision/threads.py), and np.matmul would use one core; these use all of Numba's.
import numba  # noqa: E402
import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

from tinyvision.kernels.cpu import threading as _thread_policy  # noqa: E402,F401  (before any launch)

ROWS_OVER_NUMBA = True  # False: plain np.matmul (BLAS's own threads); docs/speed.md has the comparison


@njit(parallel=True, cache=True)
def _rows_matmul(a, b, out, n_chunks):
    """out = a @ b, rows [t M / n, (t + 1) M / n) by task t."""
    m = a.shape[0]
    for t in prange(n_chunks):
        r0, r1 = t * m // n_chunks, (t + 1) * m // n_chunks
        if r1 > r0:
            np.dot(a[r0:r1], b, out[r0:r1])


@njit(parallel=True, cache=True)
def _rows_matmul_tn(a, b, partial):
    """partial[t] = a[rows t]^T @ b[rows t]; their sum is a^T @ b (the rows are the reduction)."""
    m, n_chunks = a.shape[0], partial.shape[0]
    for t in prange(n_chunks):
        r0, r1 = t * m // n_chunks, (t + 1) * m // n_chunks
        if r1 > r0:
            np.dot(a[r0:r1].T, b[r0:r1], partial[t])
        else:
            partial[t] = 0


def _contiguous(*arrays: np.ndarray) -> bool:
    return all(x.ndim == 2 and (x.flags.c_contiguous or x.flags.f_contiguous) for x in arrays)


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """a (M, K) @ b (K, N), rows of a over Numba's threads (np.matmul where that cannot run)."""
    out = np.empty((a.shape[0], b.shape[1]), np.result_type(a, b)) if out is None else out
    if not (ROWS_OVER_NUMBA and a.dtype == b.dtype == out.dtype and a.flags.c_contiguous
            and out.flags.c_contiguous and _contiguous(b)):
        return np.matmul(a, b, out=out)
    with one_blas_thread():
        _rows_matmul(a, b, out, numba.get_num_threads())
    return out


def matmul_tn(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a (M, K)^T @ b (M, N) = the sum over rows, split over Numba's threads."""
    if not (ROWS_OVER_NUMBA and a.dtype == b.dtype and a.flags.c_contiguous and b.flags.c_contiguous):
        return a.T @ b
    partial = np.empty((numba.get_num_threads(), a.shape[1], b.shape[1]), a.dtype)
    with one_blas_thread():
        _rows_matmul_tn(a, b, partial)
    return partial.sum(axis=0)
