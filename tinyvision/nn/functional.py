"""PyTorch's name for the op collection: ``import tinyvision.nn.functional as F``."""
from tinyvision.functional import *  # noqa: F401,F403
from tinyvision.functional import __dict__ as _ops

__all__ = [name for name in _ops if not name.startswith("_") and callable(_ops[name])]
