"""PyTorch's name for the op collection: ``import tinyvision.nn.functional as F``."""
from tinyvision.functional import *  # noqa: F401,F403
from tinyvision.functional import __all__  # noqa: F401  (the ops, never the submodules)
