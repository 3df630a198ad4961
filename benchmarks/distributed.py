"""Data parallelism on this machine, and a model of it on 8 and 64 machines.

    python -m benchmarks.distributed                 # needs the `mpi` extra (mpiexec)

1. Training steps (forward, cross-entropy, backward, SGD) of ResNet-18 (CIFAR stem, 32x32) and
   ViT-Tiny/4 (32x32, 64 patches) on a global batch of 32, run two ways on the same cores:
   1 process x 2 threads (batch 32), and 2 processes x 1 thread under ``mpiexec -n 2``
   (batch 16 each, DistributedDataParallel). For the 2-process run it also reports the
   all-reduce's share of the step: the time backward ends up *waiting* for it (what overlap
   did not hide) and the time one blocking all-reduce of all gradients takes on its own.
2. All-reduce latency and bandwidth between 2 processes (8 B to 16 MB), fitted to the ring
   all-reduce's cost t(n) = 2 (P - 1) alpha + 2 (P - 1) / P * n / B (P = 2: t = 2 alpha + n / B).
3. A *model* (not a measurement) of P = 8 and 64 machines, each running what was measured in
   1. with a batch of 32: step = compute + all-reduce (no overlap) or max of the two (perfect
   overlap), with the measured alpha and B, and with an assumed 10 Gb/s Ethernet link.

Ratios on a shared machine are noisy: the load average is printed with the numbers.
Writes benchmarks/results/distributed.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from benchmarks.runner import RESULTS_DIR, set_threads

BATCH = 32  # the global batch of one step
MODELS = {
    "resnet18": ("resnet18", dict(num_classes=10, cifar_stem=True)),
    "vit_tiny/4": ("vit_tiny_patch16_224", dict(num_classes=10, img_size=32, patch_size=4)),
}
# an assumed link for the model: 10 Gb/s Ethernet, 25 us per message (typical of TCP between
# two machines; InfiniBand is ~10x better on both)
ETHERNET = {"alpha_s": 25e-6, "bandwidth_Bps": 10e9 / 8}


# ----------------------------------------------------------------- what each rank runs
def time_steps(name: str, steps: int) -> dict[str, Any]:
    """Median seconds per training step of ``name`` on this rank's share of the batch."""
    import tinyvision as tv
    import tinyvision.distributed as dist
    import tinyvision.nn.functional as F
    from tinyvision.models import create_model
    from tinyvision.optim import SGD

    world = dist.get_world_size()
    tv.manual_seed(0)
    model = create_model(MODELS[name][0], **MODELS[name][1])
    ddp = dist.DistributedDataParallel(model) if world > 1 else None
    waited = [0.0]
    if ddp is not None:  # time what backward waits for the all-reduce after its last gradient
        finish = ddp._finish

        def timed_finish() -> None:
            start = time.perf_counter()
            finish()
            waited[0] += time.perf_counter() - start
        ddp._finish = timed_finish
    optimizer = SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(dist.get_rank())
    x = tv.tensor(rng.standard_normal((BATCH // world, 3, 32, 32)).astype(np.float32))
    y = tv.tensor(rng.integers(0, 10, BATCH // world))
    times, waits = [], []
    for step in range(steps + 1):  # the first is a warm-up (Numba compiles, buffers grow)
        dist.barrier()  # start together: a step's time then includes waiting for the slower rank
        waited[0] = 0.0
        start = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step:
            times.append(time.perf_counter() - start)
            waits.append(waited[0])
    grad_bytes = sum(p.numel() * p.dtype.itemsize for p in model.parameters())
    result = {"step_s": statistics.median(times), "wait_s": statistics.median(waits), "grad_bytes": grad_bytes}
    if world > 1:  # one blocking all-reduce of every gradient, alone
        flat = np.zeros(grad_bytes // 4, dtype=np.float32)
        result["allreduce_alone_s"] = allreduce_seconds(flat, repeats=5)
    return result


def allreduce_seconds(array: np.ndarray, repeats: int) -> float:
    """Median seconds of one in-place sum over all ranks of ``array``."""
    import tinyvision.distributed as dist
    from tinyvision.distributed import comm

    times = []
    for _ in range(repeats + 1):
        dist.barrier()
        start = time.perf_counter()
        comm.wait([comm.iall_reduce(array)], "benchmark all-reduce")
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def worker(threads: int, steps: int, out: str) -> None:
    import tinyvision.distributed as dist

    rank, world = dist.init(timeout=600)
    set_threads(threads)
    result: dict[str, Any] = {"world": world, "threads": threads,
                              "models": {name: time_steps(name, steps) for name in MODELS}}
    if world > 1:
        sizes = [8, 1024, 65536, 2**20, 2**22, 2**24]
        result["allreduce"] = {n: allreduce_seconds(np.zeros(n // 4, dtype=np.float32), repeats=9 if n < 2**22 else 5)
                               for n in sizes}
    if rank == 0:
        Path(out).write_text(json.dumps(result))


# ----------------------------------------------------------------- the driver
def run_workers(processes: int, threads: int, steps: int) -> dict[str, Any]:
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    if mpiexec is None:
        raise SystemExit("benchmarks.distributed needs mpiexec: pip install 'tinyvision[mpi]'")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        subprocess.run([mpiexec, "-n", str(processes), sys.executable, "-m", "benchmarks.distributed",
                        "--worker", "--threads", str(threads), "--steps", str(steps), "--json", out], check=True)
        return json.loads(Path(out).read_text())


def fit_alpha_bandwidth(allreduce: dict[str, float]) -> tuple[float, float]:
    """alpha from the smallest message (t = 2 alpha), B from the largest (t = 2 alpha + n / B)."""
    sizes = sorted(int(n) for n in allreduce)
    alpha = allreduce[str(sizes[0])] / 2
    bandwidth = sizes[-1] / max(allreduce[str(sizes[-1])] - 2 * alpha, 1e-12)
    return alpha, bandwidth


def ring_allreduce_seconds(nbytes: int, machines: int, alpha: float, bandwidth: float) -> float:
    """Ring all-reduce: P - 1 reduce-scatter steps then P - 1 all-gather steps, each sending one
    of P chunks of n / P bytes to the next machine: 2 (P - 1) (alpha + n / (P B))."""
    if machines == 1:
        return 0.0
    return 2 * (machines - 1) * (alpha + nbytes / (machines * bandwidth))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m benchmarks.distributed", description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=4, help="timed steps per model (after one warm-up)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--json", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args.threads, args.steps, args.json)
        return {}

    load_before = os.getloadavg()[0]
    one = run_workers(1, 2, args.steps)
    two = run_workers(2, 1, args.steps)
    load_after = os.getloadavg()[0]
    print(f"\nTraining steps, global batch {BATCH}, on {os.cpu_count()} CPUs (load average "
          f"{load_before:.1f} -> {load_after:.1f}: other work shares these cores, so the figures are noisy)")
    print(f"{'model':12} {'1 proc x 2 thr':>15} {'2 proc x 1 thr':>15} {'speed-up':>9} "
          f"{'waited for all-reduce':>22} {'all-reduce alone':>17}")
    rows = {}
    for name in MODELS:
        a, b = one["models"][name], two["models"][name]
        rows[name] = {"one_process_step_s": a["step_s"], "two_process_step_s": b["step_s"],
                      "speedup": a["step_s"] / b["step_s"], "waited_s": b["wait_s"],
                      "waited_share": b["wait_s"] / b["step_s"], "allreduce_alone_s": b["allreduce_alone_s"],
                      "allreduce_alone_share": b["allreduce_alone_s"] / b["step_s"], "grad_bytes": b["grad_bytes"]}
        r = rows[name]
        print(f"{name:12} {a['step_s']:13.3f} s {b['step_s']:13.3f} s {r['speedup']:8.2f}x "
              f"{b['wait_s'] * 1e3:10.1f} ms ({r['waited_share']:5.1%}) "
              f"{r['allreduce_alone_s'] * 1e3:8.1f} ms ({r['allreduce_alone_share']:4.1%})")

    alpha, bandwidth = fit_alpha_bandwidth(two["allreduce"])
    print("\nAll-reduce between 2 processes on this machine (float32, median):")
    for n, t in two["allreduce"].items():
        print(f"  {int(n):>10,d} B  {t * 1e6:10.1f} us  {int(n) / t / 1e9:7.3f} GB/s")
    print(f"  fitted: latency alpha = {alpha * 1e6:.1f} us per message, bandwidth B = {bandwidth / 1e9:.2f} GB/s")

    links = {"this machine (measured)": {"alpha_s": alpha, "bandwidth_Bps": bandwidth},
             "10 Gb/s Ethernet (assumed)": ETHERNET}
    model_rows = []
    print(f"\nA MODEL, not a measurement: P machines like this one, each 1 process x 2 threads with a batch "
          f"of {BATCH} (global batch {BATCH}P), ring all-reduce of all gradients per step")
    print(f"{'model':12} {'link':28} {'P':>3} {'all-reduce':>11} {'efficiency':>11} {'with overlap':>13} "
          f"{'images/s':>9}")
    for name in MODELS:
        compute = one["models"][name]["step_s"]
        nbytes = rows[name]["grad_bytes"]
        for link, c in links.items():
            for machines in (1, 8, 64):
                comm_s = ring_allreduce_seconds(nbytes, machines, c["alpha_s"], c["bandwidth_Bps"])
                serial, overlapped = compute / (compute + comm_s), compute / max(compute, comm_s)
                images = machines * BATCH / (compute + comm_s)
                model_rows.append({"model": name, "link": link, "machines": machines, "allreduce_s": comm_s,
                                   "efficiency": serial, "efficiency_overlapped": overlapped,
                                   "images_per_s": images})
                print(f"{name:12} {link:28} {machines:3d} {comm_s * 1e3:8.1f} ms {serial:10.1%} "
                      f"{overlapped:12.1%} {images:9.1f}")
    result = {"batch": BATCH, "cpus": os.cpu_count(), "load_average_before": load_before,
              "load_average_after": load_after, "steps": args.steps, "one_process": one, "two_processes": two,
              "table": rows, "alpha_s": alpha, "bandwidth_Bps": bandwidth, "model_of_scaling": model_rows}
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "distributed.json").write_text(json.dumps(result, indent=1))
    print(f"\nwrote {RESULTS_DIR / 'distributed.json'}")
    return result


if __name__ == "__main__":
    main()
