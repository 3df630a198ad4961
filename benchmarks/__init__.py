"""Benchmarks: tinyvision vs PyTorch on the same shapes, in one process (see runner.py)."""
