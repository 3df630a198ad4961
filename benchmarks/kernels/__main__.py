"""Run the kernel benchmarks: ``python -m benchmarks.kernels [--device cuda] [--threads 2] [conv ...]``.

Without module names it runs every module of this package that defines ``run(device)``.
The glibc allocator settings of the Makefile (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_:
big freed buffers stay mapped instead of being returned to the OS and faulted back in, page by
page, on the next op) must be in the environment when the process starts, so when they are
missing this re-executes itself with them set; ``--default-malloc`` keeps glibc's defaults.
"""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

TUNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "17179869184"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.kernels", description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="benchmark modules to run (default: all)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch, BLAS and Numba")
    parser.add_argument("--default-malloc", action="store_true", help="do not set the tuned glibc malloc variables")
    args = parser.parse_args(argv)

    if not args.default_malloc and any(os.environ.get(k) != v for k, v in TUNED_MALLOC.items()):
        os.execve(sys.executable, [sys.executable, "-m", "benchmarks.kernels", *sys.argv[1:]],
                  {**os.environ, **TUNED_MALLOC})

    import benchmarks.kernels as package
    from benchmarks.runner import set_threads

    set_threads(args.threads)
    names = args.modules or sorted(m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_"))
    for name in names:
        module = importlib.import_module(f"benchmarks.kernels.{name}")
        if hasattr(module, "run"):
            module.run(device=args.device).print_and_save()


if __name__ == "__main__":
    main()
