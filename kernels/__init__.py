"""tinyvision.kernels: raw-array compute, no autograd.

This folder sits at the repository's top level and installs as ``tinyvision.kernels`` (never
as a top-level ``kernels`` module: an unrelated PyPI package has that name).
"""
