"""Scaled dot-product attention: each rung of the attention ladder and PyTorch, fwd + bwd, float32.

    python -m benchmarks.kernels attention                  # CPU, 2 threads for everyone
    python -m benchmarks.kernels --device cuda attention    # GPU rung vs torch CUDA
    python -m benchmarks.kernels.attention                  # this module alone (CPU)

Case: ViT-Ti/16 self-attention, B=32, 3 heads, L=S=197 tokens, head dim 64, no mask.
FLOPs: 4*B*H*L^2*D for the forward (q k^T and P v) and 3x that for forward + backward.
Every rung runs ``tinyvision.nn.functional.scaled_dot_product_attention`` + ``backward()``
(autograd included) under ``kernels.use(rung)``; torch runs ``F.scaled_dot_product_attention``
on the same q, k, v and output gradient. On the CPU, two "cpu part" rows time the Numba rung's
pieces alone, to show what limits it: the six batched OpenBLAS matmuls, and the fused softmax
forward + backward kernels.

Then the CPU rung's three algorithms (kernels/cpu/attention.py), each forced, at L = 197
(the case above), 1,024 and 4,096 (B=1, 3 heads, D=64): time and ``peak MiB``, tracemalloc's
peak over one forward + backward (NumPy's allocations: the (B, H, L, S) scores and their
temporaries; Numba's per-thread tiles are not traced). The "cpu" row is the table's choice.
"""
from __future__ import annotations


import numpy as np

import tinyvision as tv
import tinyvision.nn.functional as F
from benchmarks.runner import Report, cuda_sync
from tinyvision.kernels import compat
from tinyvision.kernels.cpu.attention import algorithm
from tinyvision.kernels.dispatch import use, use_algorithm

B, HEADS, L, D = 32, 3, 197, 64
CASE = f"sdpa B{B} H{HEADS} L{L} D{D}, fwd+bwd"
GFLOP = 3 * 4 * B * HEADS * L * L * D / 1e9


def _cpu_parts(report: Report, q, k, v, grad) -> None:
    """The Numba rung's pieces alone (the same calls kernels/cpu/attention.py makes)."""
    from tinyvision.kernels.cpu import attention as cpu

    scores = np.matmul(q, k.swapaxes(-1, -2))
    probs = scores.copy()
    cpu._softmax_rows(cpu._rows(probs), np.float32(D ** -0.5), L, False)
    dscores = np.matmul(grad, v.swapaxes(-1, -2))

    def matmuls() -> None:
        np.matmul(q, k.swapaxes(-1, -2))                  # scores
        np.matmul(probs, v)                               # out
        np.matmul(probs.swapaxes(-1, -2), grad)           # dv
        np.matmul(grad, v.swapaxes(-1, -2))               # dP
        np.matmul(dscores, k)                             # dq
        np.matmul(dscores.swapaxes(-1, -2), q)            # dk

    def softmaxes() -> None:
        s = scores.copy()                                 # the kernels work in place
        cpu._softmax_rows(cpu._rows(s), np.float32(D ** -0.5), L, False)
        cpu._softmax_backward_rows(cpu._rows(probs), cpu._rows(dscores.copy()))

    report.add(CASE, "cpu part: 6 matmuls", matmuls, gflop=GFLOP)
    report.add(CASE, "cpu part: softmax fwd+bwd (+2 copies)", softmaxes)


def run(device: str = "cpu") -> Report:
    """Time the case on ``device`` ('cpu': reference, cpu rung, torch; 'cuda': gpu rung, torch)."""
    import torch

    report = Report(f"kernels_attention_{device}")
    sync = cuda_sync("attention") if device == "cuda" else None
    if device == "cuda" and sync is None:
        return report
    rng = np.random.default_rng(0)
    q, k, v, grad = (rng.standard_normal((B, HEADS, L, D)).astype(np.float32) for _ in range(4))

    tq, tk, tv_ = (torch.tensor(a, device=device, requires_grad=True) for a in (q, k, v))
    tg = torch.tensor(grad, device=device)

    def torch_step() -> None:
        tq.grad = tk.grad = tv_.grad = None
        torch.nn.functional.scaled_dot_product_attention(tq, tk, tv_).backward(tg)
    report.add(CASE, "torch", torch_step, gflop=GFLOP, sync=sync, repeats=30 if device == "cuda" else 9)

    Q, K, V = (tv.tensor(compat.to_device(a, device), requires_grad=True) for a in (q, k, v))
    G = tv.tensor(compat.to_device(grad, device))

    def step() -> None:
        Q.grad = K.grad = V.grad = None
        F.scaled_dot_product_attention(Q, K, V).backward(G)
    for rung in (["gpu"] if device == "cuda" else ["cpu", "reference"]):
        with use(rung):
            report.add(CASE, rung, step, gflop=GFLOP, sync=sync, repeats=3 if rung == "reference" else 9,
                       warmup=1 if rung == "reference" else 2)
    if device == "cpu":
        _cpu_parts(report, q, k, v, grad)
        _algorithms(report, torch)
    return report


def _peak_mib(fn) -> str:
    import tracemalloc

    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return f"{peak / 2**20:.0f}"


def _algorithms(report: Report, torch) -> None:
    """Each CPU algorithm forced, at three sequence lengths, with its traced peak memory."""
    rng = np.random.default_rng(1)
    for b, length, repeats in ((B, L, 9), (1, 1024, 5), (1, 4096, 3)):
        case = f"sdpa B{b} H{HEADS} L{length} D{D}, fwd+bwd"
        q, k, v, grad = (rng.standard_normal((b, HEADS, length, D)).astype(np.float32) for _ in range(4))
        Q, K, V = (tv.tensor(a, requires_grad=True) for a in (q, k, v))
        G = tv.tensor(grad)
        tq, tk, tv_ = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
        tg = torch.tensor(grad)

        def step() -> None:
            Q.grad = K.grad = V.grad = None
            F.scaled_dot_product_attention(Q, K, V).backward(G)

        def torch_step() -> None:
            tq.grad = tk.grad = tv_.grad = None
            torch.nn.functional.scaled_dot_product_attention(tq, tk, tv_).backward(tg)
        gflop = 3 * 4 * b * HEADS * length * length * D / 1e9
        if length != L:
            report.add(case, "torch", torch_step, gflop=gflop, repeats=repeats, warmup=1)
        for name in (None, "batched", "heads", "flash"):
            with use("cpu"), use_algorithm("attention", name):
                label = f"cpu: {name}" if name else "cpu"
                report.add(case, label, step, gflop=gflop, repeats=repeats, warmup=1, peak_MiB=_peak_mib(step),
                           algorithm=name or algorithm(length, length, None, None))


if __name__ == "__main__":
    from benchmarks.runner import set_threads

    set_threads(2)
    run().print_and_save()
