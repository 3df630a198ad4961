"""tinyvision: computer vision rebuilt from scratch on NumPy, checked against PyTorch.

``import tinyvision as tv`` gives the Tensor, the ops under their PyTorch names
(``tv.exp``, ``tv.cat``, ``tv.softmax``...), ``tv.no_grad`` and ``tv.gradcheck``; the
subpackages (``tv.nn``, ``tv.optim``, ``tv.models``, ``tv.data``...) load on first use.
"""
# First, before NumPy loads OpenBLAS: the thread policy (OPENBLAS_THREAD_TIMEOUT, threads.py).
from tinyvision import threads as _threads  # noqa: F401

import numpy as _np  # noqa: E402

from tinyvision.autograd import (Function, Tensor, enable_grad, get_default_dtype, gradcheck,
                                 is_grad_enabled, no_grad, set_default_dtype, set_grad_enabled)
from tinyvision.creation import (arange, as_tensor, bernoulli, empty, empty_like, eye, from_numpy,
                                 full, full_like, is_tensor, linspace, multinomial, ones,
                                 ones_like, rand, rand_like, randint, randn, randn_like, randperm,
                                 tensor, zeros, zeros_like)
from tinyvision.functional import *  # noqa: F401,F403  (the ops, PyTorch-named)
from tinyvision.random import manual_seed
from tinyvision.serialization import load, save
from tinyvision import functional  # noqa: E402
from tinyvision.threads import set_num_threads

float16, float32, float64 = _np.float16, _np.float32, _np.float64
int32, int64, uint8 = _np.int32, _np.int64, _np.uint8
bool_ = _np.bool_
long, double, half = int64, float64, float16

__version__ = "0.1.0"


# --------------------------------------------------------------------------- subpackages
# `tv.models`, `tv.data`, ... are imported the first time they are touched (PEP 562), as
# `torch.nn` is reachable after `import torch`: `import tinyvision` stays the cost of the
# autograd core and the ops (README.md has the measured import times).
_SUBPACKAGES = ("nn", "optim", "models", "data", "train", "viz", "ops", "metrics", "imaging",
                "distributed", "kernels")


def __getattr__(name: str):
    """Import ``tinyvision.<name>`` when ``name`` is a subpackage (called only when normal
    lookup fails, i.e. the first time)."""
    if name not in _SUBPACKAGES:
        raise AttributeError(f"module 'tinyvision' has no attribute {name!r}")
    import importlib

    try:
        return importlib.import_module(f"tinyvision.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"tinyvision.{name}":
            raise  # the subpackage exists but something it imports does not: say that
        raise AttributeError(f"module 'tinyvision' has no attribute {name!r}: the subpackage "
                             f"tinyvision.{name} is not in this installation") from exc


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SUBPACKAGES))


def load_checkpoint(path):
    """``(model in eval mode, config)`` from a checkpoint written by ``tinyvision train``
    (tinyvision/train/checkpoint.py: every part of the file is checked before it is trusted)."""
    from tinyvision.train.checkpoint import load_checkpoint as load

    return load(path)
