"""The engine: Tensor, Function, the graph walk, no_grad, gradcheck."""
from tinyvision.autograd.function import (Context, Function, enable_grad, is_grad_enabled,
                                          no_grad, set_grad_enabled, sum_to)
from tinyvision.autograd.tensor import Tensor, get_default_dtype, set_default_dtype
from tinyvision.autograd.gradcheck import GradcheckError, gradcheck

__all__ = ["Context", "Function", "Tensor", "enable_grad", "get_default_dtype", "gradcheck",
           "GradcheckError", "is_grad_enabled", "no_grad", "set_default_dtype",
           "set_grad_enabled", "sum_to"]
