"""The one dispatch point: which rung of the ladder runs an op.

Every hot op exists three times with one signature::

    tinyvision.kernels.reference.<topic>.<name>   NumPy, written to be read (the specification)
    tinyvision.kernels.cpu.<topic>.<name>         Numba, fast on the CPU
    tinyvision.kernels.gpu.<topic>.<name>         CuPy, for arrays on a CUDA device

``kernel("conv", "conv2d_forward", x)`` returns the function to call for array ``x``: the GPU
rung for a CuPy array, otherwise the Numba rung. ``with use("reference"):`` forces a rung, so
that a learner can run the same model on each and compare.

Within a rung, some ops have several algorithms (conv: im2col or Winograd; attention: batched,
heads or flash): the rung picks one per call from a table of measurements in its source, and
``with use_algorithm("conv", "winograd2"):`` forces one where it applies (tests, benchmarks).

Names are strings, so a rung that lacks one would fail only when it runs:
``tests/test_kernels_ladder.py`` reads every ``kernel(topic, name, ...)`` call in the library
and checks that each rung defines each name with one signature (and, in ``__all__``, no other).
"""
from __future__ import annotations

import contextlib
import importlib
import threading
from typing import Any, Callable, Iterator

from tinyvision.kernels.compat import device_of

RUNGS = ("reference", "cpu", "gpu")
ALGORITHMS = {"conv": ("im2col", "winograd2", "winograd4"), "attention": ("batched", "heads", "flash")}
_forced = threading.local()


@contextlib.contextmanager
def use(rung: str) -> Iterator[None]:
    """Force ``rung`` ('reference', 'cpu' or 'gpu') for every kernel call inside the block."""
    if rung not in RUNGS:
        raise ValueError(f"use: rung must be one of {RUNGS}, got {rung!r}")
    previous = getattr(_forced, "rung", None)
    _forced.rung = rung
    try:
        yield
    finally:
        _forced.rung = previous


def current_rung(array: Any) -> str:
    """The rung that will run for ``array``: the forced one, or the fastest for its device."""
    forced = getattr(_forced, "rung", None)
    device = device_of(array)
    if forced is not None:
        if (forced == "gpu") != (device == "cuda"):
            raise RuntimeError(f"kernels.use({forced!r}) cannot run an array on device '{device}'")
        return forced
    return "gpu" if device == "cuda" else "cpu"


def kernel(topic: str, name: str, array: Any) -> Callable[..., Any]:
    """The function ``name`` from ``tinyvision.kernels.<rung>.<topic>`` for ``array``."""
    module = importlib.import_module(f"tinyvision.kernels.{current_rung(array)}.{topic}")
    return getattr(module, name)


@contextlib.contextmanager
def use_algorithm(op: str, name: str | None) -> Iterator[None]:
    """Force algorithm ``name`` of ``op`` (see ALGORITHMS) wherever it applies inside the block;
    None goes back to the rung's table."""
    if op not in ALGORITHMS or (name is not None and name not in ALGORITHMS[op]):
        raise ValueError(f"use_algorithm: expected an op in {sorted(ALGORITHMS)} and one of its algorithms "
                         f"{ALGORITHMS.get(op, ())} or None, got op={op!r}, name={name!r}")
    forced = _forced.__dict__.setdefault("algorithms", {})
    previous = forced.get(op)
    forced[op] = name
    try:
        yield
    finally:
        forced[op] = previous


def forced_algorithm(op: str) -> str | None:
    """The algorithm of ``op`` forced by an enclosing ``use_algorithm``, or None."""
    return _forced.__dict__.get("algorithms", {}).get(op)
