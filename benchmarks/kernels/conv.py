"""Convolution: each rung of the conv ladder and PyTorch, forward + backward, float32.

    python -m benchmarks.kernels conv                  # CPU, 2 threads for everyone
    python -m benchmarks.kernels --device cuda conv    # GPU rung vs torch CUDA

Cases (a mid-network layer and a stem, the shapes docs/convolution.md reports):
  a: conv2d N=32, 64->64, 32x32, 3x3, pad 1 (a ResNet-18-CIFAR layer): forward, dx and dW,
     3x the forward FLOPs.
  c: conv2d N=8, 3->64, 224x224, 7x7, stride 2, pad 3 (the ImageNet stem): forward and dW
     only, 2x the forward FLOPs; a stem's input is the image, which needs no gradient.
  d: conv3d N=2, 32->32, 8x32x32, 3x3x3, pad 1 (a video / volume layer): forward, dx and dW,
     run as 3 conv2d calls per pass on the same rungs (docs/convolution.md).

Every rung runs through ``tinyvision.nn.functional.conv2d`` and ``backward()`` (autograd
included) under ``kernels.use(rung)``; torch runs ``F.conv2d`` with the same inputs and output
gradient. The reference rung runs only on the case with fewer FLOPs (c): it is slow. On the
CPU the "cpu part" rows time the Numba rung's pieces alone, to show where its time goes:
the im2col copies (forward and the dW recomputation), the OpenBLAS GEMMs, the channels-last
copies of the output gradient, and col2im. ``workspace MB`` is the size of the im2col columns.
On CUDA torch's TF32 is switched off, so that both sides do float32 arithmetic.
The "cpu" row runs the algorithm kernels/cpu/conv.py's table picks (column ``algorithm``);
for the 3x3 stride-1 case the rows "cpu: im2col", "cpu: winograd2" and "cpu: winograd4" force
each algorithm (``kernels.dispatch.use_algorithm``), the measurements behind that table.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

import tinyvision as tv
import tinyvision.nn.functional as F
from benchmarks.runner import Report, cuda_sync
from tinyvision.kernels.cpu.conv import algorithm
from tinyvision.kernels.dispatch import use, use_algorithm
from tinyvision.kernels.reference.conv import conv_output_size


@dataclass
class Case:
    name: str
    x: tuple
    w: tuple
    stride: int
    padding: int
    input_grad: bool  # False: a stem layer, only dW is needed
    reference: bool   # also time the (slow) NumPy reference rung

    @property
    def ndim(self) -> int:  # spatial dims: 2 (conv2d) or 3 (conv3d)
        return len(self.x) - 2

    @property
    def pair_args(self) -> tuple:
        return (self.stride,) * 2, (self.padding,) * 2, (1, 1), 1

    def conv(self, functional):
        return functional.conv2d if self.ndim == 2 else functional.conv3d

    def gflop(self) -> float:
        """2 * multiply-adds of the forward, times 3 (fwd, dx, dW) or 2 (fwd, dW)."""
        forward = 2 * np.prod(self.out_shape(), dtype=np.int64) * np.prod(self.w[1:], dtype=np.int64)
        return float(forward) * (3 if self.input_grad else 2) / 1e9

    def out_shape(self) -> tuple:
        spatial = (conv_output_size(n, k, self.stride, self.padding) for n, k in zip(self.x[2:], self.w[2:]))
        return (self.x[0], self.w[0]) + tuple(spatial)

    def workspace_mb(self) -> float:
        """im2col's columns: one row per output pixel, C/groups * KH * KW floats (per depth tap for 3-D)."""
        rows = np.prod(self.out_shape(), dtype=np.int64) // self.w[0]
        return round(float(rows * self.w[1] * self.w[-2] * self.w[-1]) * 4 / 2**20, 1)


CASES = [
    Case("a: N32 64->64 32x32 k3 p1, fwd+dx+dW", (32, 64, 32, 32), (64, 64, 3, 3), 1, 1, True, False),
    Case("c: N8 3->64 224x224 k7 s2 p3, fwd+dW", (8, 3, 224, 224), (64, 3, 7, 7), 2, 3, False, True),
    Case("d: conv3d N2 32->32 8x32x32 k3 p1, fwd+dx+dW", (2, 32, 8, 32, 32), (32, 32, 3, 3, 3), 1, 1, True, False),
]


def _tinyvision_step(case: Case, x, w, grad, device: str) -> Callable[[], None]:
    X = tv.tensor(x, device=device, requires_grad=case.input_grad)
    W = tv.tensor(w, device=device, requires_grad=True)
    G = tv.tensor(grad, device=device)

    def step() -> None:
        X.grad = W.grad = None
        case.conv(F)(X, W, stride=case.stride, padding=case.padding).backward(G)
    return step


def _torch_step(case: Case, x, w, grad, device: str) -> Callable[[], None]:
    import torch

    X = torch.tensor(x, device=device, requires_grad=case.input_grad)
    W = torch.tensor(w, device=device, requires_grad=True)
    G = torch.tensor(grad, device=device)

    def step() -> None:
        X.grad = W.grad = None
        case.conv(torch.nn.functional)(X, W, stride=case.stride, padding=case.padding).backward(G)
    return step


def _cpu_parts(report: Report, case: Case, x, w, grad) -> None:
    """The Numba rung's pieces, timed alone (the same calls kernels/cpu/conv.py makes)."""
    from tinyvision.kernels.cpu import conv as cpu

    args, gflop = case.pair_args, case.gflop()
    (kh, kw), (n, c, h, wd), (_, _, oh, ow) = case.w[2:], case.x, case.out_shape()
    wm, g = cpu._weight_matrices(w, 1), cpu._grad_matrices(grad, 1).copy()
    cols = cpu._columns(x, (kh, kw), *args).copy()                   # (1, N*OH*OW, KH*KW*C)
    dcols = np.empty_like(cols)

    def im2col() -> None:
        for _ in range(2):  # forward + the dW recomputation (each with its NCHW -> NHWC copy of x)
            cpu._columns(x, (kh, kw), *args)

    def gemms() -> None:
        cols @ wm                                                          # forward
        cols.transpose(0, 2, 1) @ g                                        # dW
        if case.input_grad:                                                # dcols, for dx
            np.matmul(g, wm.transpose(0, 2, 1), out=dcols)

    def grad_copies() -> None:  # grad to channels-last, once in each backward kernel
        for _ in range(2 if case.input_grad else 1):
            cpu._grad_matrices(grad, 1)

    def col2im() -> None:
        cpu._col2im(dcols.reshape(1, n, oh, ow, kh, kw * c), np.zeros((n, h, wd * c), np.float32), kw,
                    *args[0], *args[1], *args[2])

    report.add(case.name, "cpu part: im2col x2", im2col)
    report.add(case.name, "cpu part: GEMMs", gemms, gflop=gflop)
    report.add(case.name, "cpu part: grad to NHWC", grad_copies)
    if case.input_grad:
        report.add(case.name, "cpu part: col2im", col2im)


def run(device: str = "cpu") -> Report:
    """Time every case on ``device`` ('cpu': reference, cpu rung, torch; 'cuda': gpu rung, torch)."""
    report = Report(f"kernels_conv_{device}")
    sync = cuda_sync("conv") if device == "cuda" else None
    if device == "cuda" and sync is None:
        return report
    rng = np.random.default_rng(0)
    for case in CASES:
        x = rng.standard_normal(case.x).astype(np.float32)
        w = (rng.standard_normal(case.w) / np.sqrt(np.prod(case.w[1:]))).astype(np.float32)
        grad = rng.standard_normal(case.out_shape()).astype(np.float32)
        common = dict(gflop=case.gflop(), sync=sync)
        report.add(case.name, "torch", _torch_step(case, x, w, grad, device), **common,
                   repeats=30 if device == "cuda" else 9)
        if device == "cuda":
            with use("gpu"):
                report.add(case.name, "gpu", _tinyvision_step(case, x, w, grad, device), repeats=30, **common,
                           workspace_MB=case.workspace_mb())
            continue
        rungs = ["cpu"] + (["reference"] if case.reference else [])
        chosen = algorithm(case.x, case.w, *case.pair_args) if case.ndim == 2 else "im2col"
        for rung in rungs:
            with use(rung):
                report.add(case.name, rung, _tinyvision_step(case, x, w, grad, device), **common,
                           repeats=9 if rung == "cpu" else 3, warmup=2 if rung == "cpu" else 1,
                           workspace_MB=case.workspace_mb(), algorithm=chosen if rung == "cpu" else "im2col")
        if case.ndim == 2 and case.w[2:] == (3, 3) and case.stride == 1:
            for name in ("im2col", "winograd2", "winograd4"):
                with use("cpu"), use_algorithm("conv", name):
                    report.add(case.name, f"cpu: {name}", _tinyvision_step(case, x, w, grad, device), **common,
                               algorithm=name)
        if case.ndim == 2:
            _cpu_parts(report, case, x, w, grad)
    return report
