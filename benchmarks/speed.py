"""The speed issue's table: every case, tinyvision vs PyTorch in one process, in both import orders.

    python -m benchmarks.speed                 # both import orders, each in a fresh interpreter
    python -m benchmarks.speed --order numpy-first --cases conv3x3 sdpa197

A user's script imports NumPy first as often as not, and OpenBLAS reads its thread variables
once, when NumPy loads it (tinyvision/threads.py), so each import order runs in its own
interpreter with no environment variable set by us (no malloc tuning, no
OPENBLAS_THREAD_TIMEOUT from outside). Inside one interpreter, torch and tinyvision run the
same inputs with 2 threads each, interleaved (one call of each per round), and each row is the
median of its rounds; the ratio is tinyvision / torch. ``algorithm`` is what the CPU rung's
tables chose (kernels/cpu/conv.py, kernels/cpu/attention.py). ``peak MiB`` is tracemalloc's
peak over one call of ours (NumPy's allocations; Numba's small tile buffers are not traced);
for the model steps ``before`` is the same step with the algorithms this work replaced forced
(im2col convolutions, batched attention). Quote ratios with the load average printed at the top:
on a shared machine absolute times are not comparable from one run to the next.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from typing import Any, Callable

ORDERS = ("tinyvision-first", "numpy-first")


def _interleaved(fns: dict[str, Callable[[], Any]], rounds: int, warmup: int = 2) -> dict[str, float]:
    """Median seconds of each callable, calling them in turn each round (so load drifts hit all)."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def _peak_mib(fn: Callable[[], Any]) -> float:
    import tracemalloc

    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


# --------------------------------------------------------------------------- the cases
def _conv_case(x_shape, w_shape, stride, padding, input_grad):
    import numpy as np
    import torch

    import tinyvision as tv
    import tinyvision.nn.functional as F
    from tinyvision.kernels.cpu.conv import algorithm

    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = (rng.standard_normal(w_shape) / np.sqrt(np.prod(w_shape[1:]))).astype(np.float32)
    xt, wt = torch.tensor(x, requires_grad=input_grad), torch.tensor(w, requires_grad=True)
    xo, wo = tv.tensor(x, requires_grad=input_grad), tv.tensor(w, requires_grad=True)
    out_shape = torch.nn.functional.conv2d(xt, wt, stride=stride, padding=padding).shape
    g = rng.standard_normal(tuple(out_shape)).astype(np.float32)
    gt, go = torch.tensor(g), tv.tensor(g)

    def torch_step() -> None:
        xt.grad = wt.grad = None
        torch.nn.functional.conv2d(xt, wt, stride=stride, padding=padding).backward(gt)

    def ours() -> None:
        xo.grad = wo.grad = None
        F.conv2d(xo, wo, stride=stride, padding=padding).backward(go)
    pair = ((stride,) * 2, (padding,) * 2, (1, 1), 1)
    return torch_step, ours, algorithm(x_shape, w_shape, *pair)


def _pool_case(kernel, stride, padding):
    import numpy as np
    import torch

    import tinyvision as tv
    import tinyvision.nn.functional as F

    x = np.random.default_rng(0).standard_normal((32, 64, 32, 32)).astype(np.float32)
    xt, xo = torch.tensor(x, requires_grad=True), tv.tensor(x, requires_grad=True)

    def torch_step() -> None:
        xt.grad = None
        torch.nn.functional.max_pool2d(xt, kernel, stride, padding).sum().backward()

    def ours() -> None:
        xo.grad = None
        F.max_pool2d(xo, kernel, stride, padding).sum().backward()
    return torch_step, ours, "cpu"


def _sdpa_case(batch, heads, length, dim=64):
    import numpy as np
    import torch

    import tinyvision as tv
    import tinyvision.nn.functional as F
    from tinyvision.kernels.cpu.attention import algorithm

    rng = np.random.default_rng(0)
    q, k, v, g = (rng.standard_normal((batch, heads, length, dim)).astype(np.float32) for _ in range(4))
    tq, tk, tv_ = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    Q, K, V = (tv.tensor(a, requires_grad=True) for a in (q, k, v))
    gt, go = torch.tensor(g), tv.tensor(g)

    def torch_step() -> None:
        tq.grad = tk.grad = tv_.grad = None
        torch.nn.functional.scaled_dot_product_attention(tq, tk, tv_).backward(gt)

    def ours() -> None:
        Q.grad = K.grad = V.grad = None
        F.scaled_dot_product_attention(Q, K, V).backward(go)
    return torch_step, ours, algorithm(length, length, None, None)


def _model_case(name):
    from benchmarks.models import _torch_models  # noqa: PLC0415  (imports torchvision, timm)
    import numpy as np
    import torch

    import tinyvision as tv
    import tinyvision.nn.functional as F
    from tinyvision import optim
    from tinyvision.models import create_model

    if name == "resnet18_cifar":
        ours_model = create_model("resnet18", num_classes=10, cifar_stem=True)
    else:
        ours_model = create_model("vit_tiny_patch16_224", num_classes=10, img_size=32, patch_size=4)
    ref = _torch_models()[name]()
    ours_model.load_state_dict(ref.state_dict())
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 3, 32, 32)).astype(np.float32), rng.integers(0, 10, 32)
    xt, yt, xo, yo = torch.tensor(x), torch.tensor(y), tv.tensor(x), tv.tensor(y)
    ref.train()
    ours_model.train()
    if name == "resnet18_cifar":
        t_opt = torch.optim.SGD(ref.parameters(), lr=0.01, momentum=0.9)
        o_opt = optim.SGD(ours_model.parameters(), lr=0.01, momentum=0.9)
    else:
        t_opt = torch.optim.AdamW(ref.parameters(), lr=1e-4)
        o_opt = optim.AdamW(ours_model.parameters(), lr=1e-4)

    def torch_step() -> None:
        t_opt.zero_grad()
        torch.nn.functional.cross_entropy(ref(xt), yt).backward()
        t_opt.step()

    def ours() -> None:
        o_opt.zero_grad()
        F.cross_entropy(ours_model(xo), yo).backward()
        o_opt.step()
    return torch_step, ours, "table"


def _conv_policy_case(rows_over_numba: bool):
    """The 3x3 layer on im2col, its GEMMs either split over Numba's threads (this design) or
    left to np.matmul and NumPy's BLAS threads (the design before): the thread-policy options."""
    from tinyvision.kernels.cpu import blas
    from tinyvision.kernels.dispatch import use_algorithm

    torch_step, ours, _ = _conv_case((32, 64, 32, 32), (64, 64, 3, 3), 1, 1, True)

    def forced() -> None:
        saved, blas.ROWS_OVER_NUMBA = blas.ROWS_OVER_NUMBA, rows_over_numba
        try:
            with use_algorithm("conv", "im2col"):
                ours()
        finally:
            blas.ROWS_OVER_NUMBA = saved
    return torch_step, forced, "im2col, GEMMs " + ("over Numba threads" if rows_over_numba else "by np.matmul")


CASES = {  # name: (label in the table, builder, rounds)
    "conv3x3": ("conv2d N32 64->64 32x32 3x3 p1 fwd+bwd", lambda: _conv_case((32, 64, 32, 32), (64, 64, 3, 3), 1, 1, True), 15),
    "conv3x3_numba_gemm": ("  same, im2col forced, GEMMs split over Numba threads", lambda: _conv_policy_case(True), 9),
    "conv3x3_blas_gemm": ("  same, im2col forced, GEMMs by np.matmul (BLAS threads)", lambda: _conv_policy_case(False), 9),
    "conv7x7": ("conv2d N8 3->64 224x224 7x7 s2 p3 fwd+dW", lambda: _conv_case((8, 3, 224, 224), (64, 3, 7, 7), 2, 3, False), 9),
    "pool3": ("max_pool2d 3x3 s2 p1 (32,64,32,32) fwd+bwd", lambda: _pool_case(3, 2, 1), 15),
    "pool2": ("max_pool2d 2x2 s2 (32,64,32,32) fwd+bwd", lambda: _pool_case(2, 2, 0), 15),
    "sdpa197": ("SDPA B32 H3 L197 D64 fwd+bwd", lambda: _sdpa_case(32, 3, 197), 15),
    "sdpa1024": ("SDPA B1 H3 L1024 D64 fwd+bwd", lambda: _sdpa_case(1, 3, 1024), 9),
    "sdpa4096": ("SDPA B1 H3 L4096 D64 fwd+bwd", lambda: _sdpa_case(1, 3, 4096), 3),
    "resnet18": ("ResNet-18 CIFAR SGD train step B32", lambda: _model_case("resnet18_cifar"), 7),
    "vit_tiny": ("ViT-Tiny/4 AdamW train step B32 32x32", lambda: _model_case("vit_tiny_patch4_32"), 7),
}
BEFORE = {"conv": "im2col", "attention": "batched"}  # the algorithms this work replaced


def run(order: str, names: list[str]) -> None:
    """Measure ``names`` in this interpreter (imported in ``order``) and print one line per case."""
    from benchmarks.runner import set_threads
    from tinyvision.kernels.dispatch import use_algorithm

    set_threads(2)
    for name in names:
        label, build, rounds = CASES[name]
        try:
            torch_step, ours, chosen = build()
        except ImportError as e:  # the model rows need torchvision and timm for torch's side
            print(f"| {label} | {order} | skipped: {e} | | | | |", flush=True)
            continue
        t = _interleaved({"torch": torch_step, "ours": ours}, rounds)
        peak = f"{_peak_mib(ours):.0f}"
        if name in ("resnet18", "vit_tiny", "sdpa197", "sdpa1024", "sdpa4096", "conv3x3"):
            with use_algorithm("conv", BEFORE["conv"]), use_algorithm("attention", BEFORE["attention"]):
                before = _interleaved({"ours": ours}, max(3, rounds // 3), warmup=1)["ours"]
                peak += f" (before {_peak_mib(ours):.0f})"
            chosen += f"; before {before * 1e3:.0f} ms"
        print(f"| {label} | {order} | {t['ours'] / t['torch']:.2f} | {t['ours'] * 1e3:.1f} | {t['torch'] * 1e3:.1f} "
              f"| {chosen} | {peak} |", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__.splitlines()[0])
    parser.add_argument("--order", choices=ORDERS, help="run one import order in this interpreter")
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    args = parser.parse_args(argv)
    if args.order:  # a child: the imports already happened in the order asked for
        run(args.order, args.cases)
        return
    print(f"load average {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} {os.getloadavg()[2]:.1f}; "
          f"{os.cpu_count()} CPUs; 2 threads each")
    print("| case | import order | x torch | tinyvision ms | torch ms | algorithm | peak MiB (ours) |")
    print("|---|---|---|---|---|---|---|")
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_THREAD_TIMEOUT", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")}
    for order in ORDERS:
        first = "import numpy" if order == "numpy-first" else "import tinyvision"
        code = f"{first}; from benchmarks.speed import main; main({['--order', order, '--cases', *args.cases]!r})"
        subprocess.run([sys.executable, "-c", code], env=env, check=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
