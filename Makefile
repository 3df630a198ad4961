# The two commands of the quick start: `make demo` and `make test`. Both create .venv when it
# is missing and install what they need into it.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# glibc returns big freed buffers to the OS after every op and takes a page fault per 4 KiB to
# get them back on the next one: on the 2-core development machine a torch conv forward
# (N32, 64->64, 32x32, 3x3) took ~4,800 faults and 19-25 ms per call, and 12-13 ms without them.
# These two keep freed memory mapped: blocks up to 32 MiB come from the heap, and the heap is
# trimmed only past 16 GiB. Either alone does not help. Used for runs and benchmarks
# (docs/convolution.md, section 3).
export MALLOC_MMAP_THRESHOLD_ := 33554432
export MALLOC_TRIM_THRESHOLD_ := 17179869184
# idle OpenBLAS threads sleep after 2**10 cycles instead of spinning 2**28 and stealing the
# core Numba's kernels need next (tinyvision/kernels/cpu/threading.py)
export OPENBLAS_THREAD_TIMEOUT := 10

.PHONY: demo test test-slow test-mpi bench gradcheck clean

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch is pinned to the 2.13.0 CPU wheel in the `test` extra: never a CUDA build.
	# `mpi` (mpi4py + the mpich wheel, which brings mpiexec): the distributed tests run 2 ranks.
	$(PY) -m pip install -q -e ".[test,data,viz,mpi,imaging]"
	touch $@

# LeNet-5 (the 1998 network) from scratch on the scikit-learn digits: >= 97% test accuracy;
# writes runs/lenet5/{last,best}.ckpt.npz, metrics.csv and curves.png
demo: $(VENV)/.installed
	$(PY) -m tinyvision.cli train --model lenet5 --data digits --epochs 10 --out runs/lenet5

test: $(VENV)/.installed
	$(PY) -m pytest -q

# the data-parallel proofs alone: 2 ranks under mpiexec (also part of `make test`)
test-mpi: $(VENV)/.installed
	$(PY) -m pytest -q -m mpi tests/test_distributed.py

test-slow: $(VENV)/.installed
	$(PY) -m pytest -q -m slow

bench: $(VENV)/.installed
	$(PY) -m benchmarks.autograd_overhead
	$(PY) -m benchmarks.kernels
	$(PY) -m benchmarks.speed

gradcheck: $(VENV)/.installed
	$(PY) -m tinyvision.cli gradcheck

clean:
	rm -rf $(VENV) runs benchmarks/results .pytest_cache .hypothesis
