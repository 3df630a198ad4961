"""Run a script with every Numba kernel compiled with bounds checks, in a fresh Python.

One helper for every kernel test (tests/test_pooling.py, tests/test_attention.py,
tests/test_kernels_conv.py). Two things make such a test able to fail:

* NUMBA_BOUNDSCHECK=1, with a cache folder of its own, so that no kernel compiled without the
  checks is reused (the first run compiles, about half a minute; later runs reuse it);
* the ``omp`` threading layer. Numba's default ``workqueue`` layer drops an exception raised
  inside a ``prange`` loop, so an out-of-range write in a parallel kernel would pass unseen.

Before the script runs, a self-check proves both: an out-of-range write inside a parallel
``prange`` loop must raise. (Measured with Numba 0.68: the check fires inside a prange body
with an inner loop, as in every kernel here, under ``omp`` only; a bare 1-D body
``a[i + 1] = 1`` is not reported by either layer, so that is not the probe.)
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap

SELF_CHECK = textwrap.dedent("""
    import numpy as np
    import numba
    from numba import njit, prange

    @njit(parallel=True)
    def _copy_rows(x, out):  # shaped like the kernels: a prange over rows, plain loops inside
        for i in prange(x.shape[0]):
            for j in range(x.shape[1]):
                out[i, j] = x[i, j]

    try:
        _copy_rows(np.zeros((8, 3)), np.zeros((8, 2)))  # 3 columns into 2
    except (IndexError, SystemError):  # inside prange the IndexError may surface as SystemError
        pass
    else:
        raise SystemExit("bounds checks inside prange are not reported "
                         f"(threading layer {numba.threading_layer()})")
    assert numba.threading_layer() == "omp", numba.threading_layer()
""")


def run_under_boundscheck(script: str, timeout: float = 300) -> None:
    """Run ``script`` (Python source) under the checks; fail with its stderr if it fails."""
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_THREADING_LAYER="omp",
               NUMBA_CACHE_DIR=os.path.join(tempfile.gettempdir(), "tinyvision-numba-boundscheck-omp"))
    source = SELF_CHECK + textwrap.dedent(script) + "\nprint('bounds ok')"
    done = subprocess.run([sys.executable, "-c", source], env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0 and "bounds ok" in done.stdout, (done.stdout + done.stderr)[-3000:]
