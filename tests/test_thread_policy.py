"""The thread policy set at import (tinyvision/threads.py, tinyvision/kernels/cpu/threading.py):
OpenBLAS's idle workers sleep after 2**10 cycles unless the user chose otherwise, BLAS gets one
thread when NumPy was imported too early for that, and Numba uses workqueue."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = "import os, tinyvision; print(os.environ['OPENBLAS_THREAD_TIMEOUT'])"
BLAS_THREADS = ("from threadpoolctl import threadpool_info; "
                "print(max(i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas'))")


def run_python(script: str, timeout: str | None = None, **variables: str | None) -> str:
    """stdout of ``script`` in a fresh interpreter, with OPENBLAS_THREAD_TIMEOUT unset or set
    to ``timeout``, and the other environment ``variables`` unset (None) or set."""
    variables["OPENBLAS_THREAD_TIMEOUT"] = timeout
    env = {k: v for k, v in os.environ.items() if k not in variables}
    env.update({k: v for k, v in variables.items() if v is not None})
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.parametrize("user_value, expected", [(None, "10"), ("20", "20")])
def test_openblas_thread_timeout_is_a_default_the_user_can_override(user_value, expected) -> None:
    assert run_python(SCRIPT, user_value) == expected


def test_blas_keeps_its_threads_when_tinyvision_comes_first() -> None:
    plain = run_python(f"import numpy; {BLAS_THREADS}")
    assert run_python(f"import tinyvision, numpy; {BLAS_THREADS}") == plain


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 CPUs for a 2-thread pool")
@pytest.mark.parametrize("user_value", [None, "10"])
def test_numpy_imported_first_leaves_blas_one_thread_unless_the_timeout_was_set(user_value) -> None:
    """Too late to set the variable: BLAS gets one thread, and set_num_threads keeps it there
    while Numba gets what was asked. With the variable set by the user, nothing changes."""
    script = ("import numpy, numba, tinyvision; tinyvision.set_num_threads(2); "
              f"print(numba.get_num_threads()); {BLAS_THREADS}")
    numba_threads, blas = run_python(script, user_value).split()
    assert numba_threads == "2"
    if user_value is None:
        assert blas == "1"
    else:
        assert blas == run_python(f"import numpy; from threadpoolctl import threadpool_limits; "
                                  f"threadpool_limits(2, user_api='blas'); {BLAS_THREADS}")


@pytest.mark.parametrize("n", [0, -1, 2.0, "2", True, 10_000])
def test_set_num_threads_rejects_what_is_not_a_usable_count(n) -> None:
    import tinyvision as tv

    with pytest.raises(ValueError, match="set_num_threads: n"):
        tv.set_num_threads(n)


def test_numba_uses_the_workqueue_layer_unless_told_otherwise() -> None:
    from tinyvision.kernels.cpu.threading import threading_layer

    assert threading_layer() == os.environ.get("NUMBA_THREADING_LAYER", "workqueue")


def test_set_num_threads_starts_numba_on_the_workqueue_layer() -> None:
    """numba.set_num_threads starts Numba's pool, and with it the layer: the policy must be
    in place before (it once was not, and benchmarks ran on omp)."""
    script = "import numba, tinyvision; tinyvision.set_num_threads(1); print(numba.threading_layer())"
    assert run_python(script, NUMBA_THREADING_LAYER=None) == "workqueue"
