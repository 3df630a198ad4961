"""What the engine costs: small ops and a small MLP step, tinyvision vs PyTorch, float32.

    python -m benchmarks.autograd_overhead [--threads 2]

On (8, 8) tensors the arithmetic is nothing; what is left is bookkeeping: unwrapping Tensors,
making a Context, recording a Node, and in backward the topological sort, sum_to and the
gradient accumulation. So these rows measure the engine's per-op overhead against PyTorch's
(C++) one. The "numpy" rows are the bare array op with no engine, the floor for ours.

Cases:
  <op> fwd       the op on inputs that require grad (a graph node is recorded)
  <op> fwd+bwd   the same, then backward() with a given output gradient, grads reset
  mlp step       784-256-10 MLP, batch 64: forward, cross_entropy, backward, SGD update
The time is per call (``us/call``); a case's rows are timed in the same process and threads.

Run it with the allocator settings of the Makefile (``make bench`` sets them). Torch's OpenMP
threads are told to sleep when idle (OMP_WAIT_POLICY=PASSIVE, set below before torch loads):
spinning, they fight OpenBLAS's threads on 2 cores, and in one process alternating the two
made both MLP steps 20-100x slower (docs/convolution.md, section 3, has the thread policy). Even
so, on a shared 2-core machine a 2-thread OpenBLAS GEMM stalls whenever another process takes
a core (one MLP step then costs ~32 ms instead of ~1.3 ms); ``--threads 1`` avoids that.
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported

from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import tinyvision as tv  # noqa: E402
from benchmarks.runner import Report, set_threads  # noqa: E402

CALLS = 200  # op calls per timed run: one call is a few microseconds, too short to time alone


def _ops(lib: Any) -> dict[str, Callable]:
    """The small ops, written once for both libraries (the same method names)."""
    return {
        "add": lambda a, b: a + b,
        "mul": lambda a, b: a * b,
        "matmul 8x8": lambda a, b: a @ b,
        "sum": lambda a, b: a.sum(),
        "relu": lambda a, b: a.relu() if lib is tv else torch.relu(a),
        "getitem [2:6, ::2]": lambda a, b: a[2:6, ::2],
    }


def _per_call(report: Report, case: str, impl: str, fn: Callable[[], Any], calls: int) -> None:
    def run() -> None:
        for _ in range(calls):
            fn()

    row = report.add(case, impl, run, repeats=7, warmup=2)
    row.extra["us/call"] = f"{row.ms * 1e3 / calls:.1f}"


def bench_ops(report: Report) -> None:
    rng = np.random.default_rng(0)
    a_np, b_np = rng.standard_normal((2, 8, 8), dtype=np.float32)
    a, b = tv.tensor(a_np, requires_grad=True), tv.tensor(b_np, requires_grad=True)
    ta, tb = torch.tensor(a_np, requires_grad=True), torch.tensor(b_np, requires_grad=True)
    numpy_ops = {"add": np.add, "mul": np.multiply, "matmul 8x8": np.matmul, "sum": lambda x, y: x.sum(),
                 "relu": lambda x, y: np.maximum(x, 0), "getitem [2:6, ::2]": lambda x, y: x[2:6, ::2]}
    ours, theirs = _ops(tv), _ops(torch)

    for name in ours:
        report_name = f"{name} fwd"
        _per_call(report, report_name, "torch", lambda: theirs[name](ta, tb), CALLS)
        _per_call(report, report_name, "tinyvision", lambda: ours[name](a, b), CALLS)
        _per_call(report, report_name, "numpy", lambda: numpy_ops[name](a_np, b_np), CALLS)

        g = ours[name](a, b).detach().numpy()
        g_ours, g_torch = tv.tensor(np.ones_like(g)), torch.ones(g.shape)

        def step_torch() -> None:
            ta.grad = tb.grad = None
            theirs[name](ta, tb).backward(g_torch)

        def step_ours() -> None:
            a.grad = b.grad = None
            ours[name](a, b).backward(g_ours)

        _per_call(report, f"{name} fwd+bwd", "torch", step_torch, CALLS // 4)
        _per_call(report, f"{name} fwd+bwd", "tinyvision", step_ours, CALLS // 4)


def bench_mlp(report: Report, batch: int = 64, sizes: tuple[int, ...] = (784, 256, 10), lr: float = 0.01) -> None:
    """One SGD step of a two-layer MLP on the same weights and data in both libraries."""
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal((batch, sizes[0]), dtype=np.float32)
    y_np = rng.integers(0, sizes[-1], batch)
    shapes = [(o, i) for i, o in zip(sizes[:-1], sizes[1:])]
    weights = [((rng.standard_normal(s) / np.sqrt(s[1])).astype(np.float32), np.zeros(s[0], np.float32))
               for s in shapes]

    def make(lib: Any, linear: Callable, cross_entropy: Callable, no_grad: Callable) -> Callable[[], None]:
        params = [lib.tensor(p, requires_grad=True) for pair in weights for p in pair]
        x, y = lib.tensor(x_np), lib.tensor(y_np)

        def step() -> None:
            h = x
            for i in range(0, len(params), 2):
                h = linear(h, params[i], params[i + 1])
                if i + 2 < len(params):
                    h = h.relu()
            loss = cross_entropy(h, y)
            for p in params:
                p.grad = None
            loss.backward()
            with no_grad():
                for p in params:  # SGD: p <- p - lr * dL/dp
                    p.data -= lr * p.grad.data

        return step

    case = f"mlp step {'-'.join(map(str, sizes))} b{batch}"
    report.add(case, "torch", make(torch, torch.nn.functional.linear, torch.nn.functional.cross_entropy, torch.no_grad))
    report.add(case, "tinyvision", make(tv, tv.linear, tv.cross_entropy, tv.no_grad))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2,
                        help="threads for torch and BLAS (1 is steadier on a busy machine)")
    threads = parser.parse_args().threads
    set_threads(threads)
    report = Report("autograd_overhead" if threads == 2 else f"autograd_overhead_{threads}threads")
    bench_ops(report)
    bench_mlp(report)
    report.print_and_save()


if __name__ == "__main__":
    main()
