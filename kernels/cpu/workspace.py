"""Reused scratch arrays for the CPU kernels (im2col columns, Winograd tiles).

The big temporaries of a convolution (the im2col columns are KH*KW times the input; Winograd's
transformed tiles (m+2)^2/m^2 times) would be a fresh mmap per call, and a page fault per
4 KiB (~1.3 us each) on first touch. So each lives in a per-thread buffer that grows to the
largest layer and is then reused.
"""
from __future__ import annotations

import threading

import numpy as np

_local = threading.local()


def workspace(tag: str, shape: tuple, dtype) -> np.ndarray:
    """A scratch array of ``shape``; its memory is reused by the next call with the same tag.

    One flat buffer per (tag, dtype) per thread, grown to the largest request, so a network
    holds one buffer per tag the size of its largest layer. Callers must not keep the result
    past the kernel that asked for it.
    """
    buffers = _local.__dict__.setdefault("buffers", {})
    dtype = np.dtype(dtype)
    size = int(np.prod(shape))
    buf = buffers.get((tag, dtype))
    if buf is None or buf.size < size:
        buf = buffers[(tag, dtype)] = np.empty(size, dtype)
    return buf[:size].reshape(shape)


def workspace_bytes() -> int:
    """Bytes held by this thread's workspaces."""
    return sum(b.nbytes for b in _local.__dict__.get("buffers", {}).values())


def release_workspaces() -> None:
    """Drop this thread's workspaces (their memory goes back at the next collection)."""
    _local.__dict__.pop("buffers", None)
