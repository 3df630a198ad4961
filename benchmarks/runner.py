"""The shared benchmark runner: time callables, print a table of ratios, write JSON.

Every benchmark measures tinyvision and PyTorch on the same inputs in the same process,
with the same thread count, and reports medians and the ratio tinyvision / torch. Ratios,
not absolute times, are what we quote: these machines are shared and noisy.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# The fp32 GEMM peak measured on the 2-core development machine: NumPy sgemm 2048^2 with 2
# threads, about 200 GFLOP/s (its FMA units top out near 230 at the boost clock). Set
# TINYVISION_PEAK_GFLOPS to your machine's figure; `share_of_peak` is relative to it.
MATMUL_PEAK_GFLOPS = float(os.environ.get("TINYVISION_PEAK_GFLOPS", "200"))


def set_threads(n: int = 2) -> None:
    """Give torch, BLAS and Numba the same number of threads (BLAS one, if NumPy was
    imported before tinyvision: tinyvision/threads.py)."""
    import tinyvision

    tinyvision.set_num_threads(n)
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass


def cuda_sync(name: str) -> Callable[[], None] | None:
    """For a run on 'cuda': the function that waits for CuPy's and torch's queued work (a
    timing must include it), with TF32 switched off so that both sides compute in float32.
    None, after printing why, when there is no GPU to run on."""
    import torch

    from tinyvision.kernels import compat

    if not compat.gpu_available() or not torch.cuda.is_available():
        print(f"{name}: skipped on cuda ({compat.gpu_unavailable_reason() or 'torch sees no CUDA device'})")
        return None
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False

    def sync() -> None:
        compat.cupy.cuda.Device().synchronize()
        torch.cuda.synchronize()
    return sync


def time_call(fn: Callable[[], Any], repeats: int = 9, warmup: int = 2, sync: Callable[[], None] | None = None) -> list[float]:
    """Wall-clock seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    return times


@dataclass
class Row:
    """One measured case: ``impl`` is e.g. 'torch', 'reference', 'cpu', 'tinyvision'."""

    case: str
    impl: str
    ms: float
    gflop: float = 0.0
    extra: dict = field(default_factory=dict)
    ratio: float | None = None  # this time / torch's time on the same case

    @property
    def gflops(self) -> float:
        return self.gflop / (self.ms / 1e3) if self.gflop and self.ms else 0.0


class Report:
    """Collects rows, fills in the ratio to torch per case, prints and saves them."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.rows: list[Row] = []

    def add(self, case: str, impl: str, fn: Callable[[], Any], gflop: float = 0.0, repeats: int = 9,
            warmup: int = 2, sync: Callable[[], None] | None = None, **extra: Any) -> Row:
        times = time_call(fn, repeats=repeats, warmup=warmup, sync=sync)
        row = Row(case, impl, statistics.median(times) * 1e3, gflop, extra)
        self.rows.append(row)
        return row

    def _ratios(self) -> None:
        torch_ms = {r.case: r.ms for r in self.rows if r.impl.startswith("torch")}
        for r in self.rows:
            r.ratio = r.ms / torch_ms[r.case] if r.case in torch_ms else None

    def table(self) -> str:
        self._ratios()
        extra_keys = sorted({k for r in self.rows for k in r.extra})
        head = ["case", "impl", "ms", "GFLOP/s", "% peak", "x torch"] + extra_keys
        lines = [head]
        for r in self.rows:
            lines.append([r.case, r.impl, f"{r.ms:.3f}", f"{r.gflops:.1f}" if r.gflop else "-",
                          f"{100 * r.gflops / MATMUL_PEAK_GFLOPS:.0f}" if r.gflop else "-",
                          f"{r.ratio:.2f}" if r.ratio is not None else "-"]
                         + [str(r.extra.get(k, "")) for k in extra_keys])
        widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
        fmt = lambda row: "  ".join(c.ljust(w) for c, w in zip(row, widths))  # noqa: E731
        return "\n".join([fmt(lines[0]), fmt(["-" * w for w in widths])] + [fmt(r) for r in lines[1:]])

    def save(self, path: Path | None = None) -> Path:
        """Write the rows and the environment as JSON (atomically) and return the path."""
        self._ratios()
        path = path or RESULTS_DIR / f"{self.name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        env = {k: os.environ.get(k) for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_",
                                              "NUMBA_THREADING_LAYER", "OPENBLAS_CORETYPE", "OMP_WAIT_POLICY")}
        payload = {"name": self.name, "machine": platform.processor() or platform.machine(),
                   "cpus": os.cpu_count(), "env": env, "peak_gflops": MATMUL_PEAK_GFLOPS,
                   "rows": [dict(asdict(r), gflops=r.gflops) for r in self.rows]}
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(payload, indent=2))
        tmp.replace(path)
        return path

    def print_and_save(self) -> None:
        print(f"\n== {self.name} ==")
        print(self.table())
        print(f"saved {self.save()}")
