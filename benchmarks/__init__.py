"""Benchmarks: tinyvision vs PyTorch on the same shapes, in one process (see runner.py)."""
# Before any benchmark module imports NumPy: tinyvision's thread policy (tinyvision/threads.py)
# sets OPENBLAS_THREAD_TIMEOUT, which OpenBLAS reads once, when NumPy loads it.
import tinyvision  # noqa: F401
