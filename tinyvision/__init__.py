"""tinyvision: computer vision rebuilt from scratch on NumPy, checked against PyTorch.

``import tinyvision as tv`` gives the Tensor, the ops under their PyTorch names
(``tv.exp``, ``tv.cat``, ``tv.softmax``...), ``tv.no_grad`` and ``tv.gradcheck``.
"""
import os as _os

# Idle OpenBLAS workers spin for 2**28 cycles (~0.1 s) after every GEMM by default, and on a
# 2-core machine the spinning worker holds the core that Numba's parallel kernels need next:
# a 0.1 ms softmax took 8 ms right after a GEMM. 2**10 cycles, then sleep, cuts a ResNet-18 or
# ViT-Tiny training step by a third (tinyvision/kernels/cpu/threading.py). OpenBLAS reads the
# variable when it loads, so this only helps when tinyvision is imported before NumPy;
# `make` exports it for every run.
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "10")

import numpy as _np  # noqa: E402

from tinyvision.autograd import (Function, Tensor, enable_grad, get_default_dtype, gradcheck,
                                 is_grad_enabled, no_grad, set_default_dtype, set_grad_enabled)
from tinyvision.creation import (arange, empty, empty_like, eye, from_numpy, full, full_like,
                                 linspace, ones, ones_like, rand, rand_like, randint, randn,
                                 randn_like, randperm, tensor, zeros, zeros_like)
from tinyvision.functional import *  # noqa: F401,F403  (the ops, PyTorch-named)
from tinyvision.random import manual_seed
from tinyvision.serialization import load, save
from tinyvision import functional, nn  # noqa: E402

float16, float32, float64 = _np.float16, _np.float32, _np.float64
int32, int64, uint8 = _np.int32, _np.int64, _np.uint8
bool_ = _np.bool_
long, double, half = int64, float64, float16

__version__ = "0.1.0"
