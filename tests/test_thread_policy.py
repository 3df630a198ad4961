"""The thread policy set at import (tinyvision/kernels/cpu/threading.py): OpenBLAS's idle
workers sleep after 2**10 cycles unless the user chose otherwise, and Numba uses workqueue."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = "import os, tinyvision; print(os.environ['OPENBLAS_THREAD_TIMEOUT'])"


@pytest.mark.parametrize("user_value, expected", [(None, "10"), ("20", "20")])
def test_openblas_thread_timeout_is_a_default_the_user_can_override(user_value, expected) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if user_value is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = user_value
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected


def test_numba_uses_the_workqueue_layer_unless_told_otherwise() -> None:
    from tinyvision.kernels.cpu.threading import threading_layer

    assert threading_layer() == os.environ.get("NUMBA_THREADING_LAYER", "workqueue")
