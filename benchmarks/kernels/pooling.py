"""Pooling: each rung of the pooling ladder and PyTorch, forward + backward, float32.

    python -m benchmarks.kernels pooling                  # CPU, 2 threads for everyone
    python -m benchmarks.kernels --device cuda pooling    # GPU rung vs torch CUDA
    python -m benchmarks.kernels.pooling                  # this module alone (CPU)

Cases on x of shape (32, 64, 32, 32) (a CIFAR-scale activation, 8 MiB):
max_pool2d 3x3 stride 2 padding 1 (ResNet's stem pool), max_pool2d 2x2 stride 2 (LeNet, VGG),
avg_pool2d 2x2 stride 2. Every rung runs ``tinyvision.nn.functional`` + ``backward()`` (autograd
included) under ``kernels.use(rung)``; torch runs the same op on the same NCHW input and output
gradient. ``GB/s`` counts the minimal traffic of fwd+bwd: read x, write y, read dy (and the
indices), write dx.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

import tinyvision as tv
import tinyvision.nn.functional as F
from benchmarks.runner import Report, cuda_sync
from tinyvision.kernels import compat
from tinyvision.kernels.dispatch import use

SHAPE = (32, 64, 32, 32)
CASES = [  # (name, op, kwargs)
    ("max_pool2d 3x3 s2 p1", "max_pool2d", dict(kernel_size=3, stride=2, padding=1)),
    ("max_pool2d 2x2 s2", "max_pool2d", dict(kernel_size=2, stride=2)),
    ("avg_pool2d 2x2 s2", "avg_pool2d", dict(kernel_size=2, stride=2)),
]


def _step(op: Callable, x, grad, requires_grad_tensor: Callable) -> Callable[[], None]:
    X, G = requires_grad_tensor(x), grad

    def step() -> None:
        X.grad = None
        op(X).backward(G)
    return step


def run(device: str = "cpu") -> Report:
    """Time every case on ``device`` ('cpu': reference, cpu rung, torch; 'cuda': gpu rung, torch)."""
    import torch

    report = Report(f"kernels_pooling_{device}")
    sync = cuda_sync("pooling") if device == "cuda" else None
    if device == "cuda" and sync is None:
        return report
    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    for name, op, kw in CASES:
        out = getattr(torch.nn.functional, op)(torch.tensor(x), **kw)
        grad = np.random.default_rng(1).standard_normal(tuple(out.shape)).astype(np.float32)
        extra = 2 if op == "max_pool2d" else 1  # max-pool also writes and reads int64 indices
        gbytes = (2 * x.nbytes + (2 + 2 * extra) * grad.nbytes) / 1e9
        theirs = _step(lambda t: getattr(torch.nn.functional, op)(t, **kw), x, torch.tensor(grad, device=device),
                       lambda a: torch.tensor(a, device=device, requires_grad=True))
        torch_row = report.add(name, "torch", theirs, sync=sync, repeats=30 if device == "cuda" else 15)
        rungs = ["gpu"] if device == "cuda" else ["cpu", "reference"]
        for rung in rungs:
            ours = _step(lambda t: getattr(F, op)(t, **kw), compat.to_device(x, device),
                         tv.tensor(compat.to_device(grad, device)),
                         lambda a: tv.tensor(a, requires_grad=True))
            with use(rung):
                row = report.add(name, rung, ours, sync=sync, repeats=3 if rung == "reference" else 15,
                                 warmup=1 if rung == "reference" else 3)
            row.extra["GB/s"] = round(gbytes / (row.ms / 1e3), 1)
        torch_row.extra["GB/s"] = round(gbytes / (torch_row.ms / 1e3), 1)
    return report


if __name__ == "__main__":
    from benchmarks.runner import set_threads

    set_threads(2)
    run().print_and_save()
