# The two commands of the quick start: `make demo` and `make test`. Both create .venv when it
# is missing and install what they need into it.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# glibc returns big buffers to the OS after every op and takes page faults to get them back;
# these two keep them (reference/performance.md, section 5.1). Used for runs and benchmarks.
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

gradcheck: $(VENV)/.installed
	$(PY) -m tinyvision.cli gradcheck

clean:
	rm -rf $(VENV) runs benchmarks/results .pytest_cache .hypothesis
