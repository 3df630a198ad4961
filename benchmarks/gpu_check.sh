python3 -m pip install --no-deps --no-build-isolation -e .
# GPU checks, generic for every kernel ladder (conv, pooling, attention, ...), for a machine
# with a CUDA device, CuPy, Numba and PyTorch installed and no network. Under 5 minutes:
#   1. every test marked `gpu` (the GPU rung against the NumPy reference, on CuPy arrays);
#   2. every kernel benchmark on the GPU rung against torch CUDA (benchmarks/kernels/*.py).
# Usage, from the repository root:  bash benchmarks/gpu_check.sh
set -euo pipefail
python3 - <<'PY'
from tinyvision.kernels.compat import gpu_available, gpu_unavailable_reason
import torch
print(f"CuPy GPU: {gpu_available() or gpu_unavailable_reason()}; torch CUDA: {torch.cuda.is_available()}")
PY
# `-m gpu` replaces setup.cfg's `-m "not slow"`; -p no:cacheprovider: the tree may be read-only
timeout 180 python3 -m pytest -q -m gpu -p no:cacheprovider tests
timeout 120 python3 -m benchmarks.kernels --device cuda
