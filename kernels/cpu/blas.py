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
