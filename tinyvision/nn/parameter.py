"""Parameter: the Tensor that a Module registers as trainable (``self.w = Parameter(...)``).

A Parameter is a Tensor in every other way; ``Module.__setattr__`` recognises the class and
puts it in ``_parameters``, which is what ``parameters()``, the optimizers and the state_dict
read. ``empty_parameter`` is the factory every layer's ``__init__`` uses before
``reset_parameters`` fills it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tinyvision.autograd.tensor import Tensor, get_default_dtype
from tinyvision.kernels import compat


class Parameter(Tensor):
    """A Tensor that a Module registers as trainable; requires grad by default.

    ``data`` may be a Tensor (its array is shared, not copied) or anything ``numpy.asarray``
    accepts.
    """

    __slots__ = ()

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        if data is None:
            data = np.empty(0, dtype=np.float32)
        super().__init__(data.data if isinstance(data, Tensor) else data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


def empty_parameter(shape: tuple[int, ...], dtype: Any = None, device: str | None = None) -> Parameter:
    """A zero-filled Parameter of ``shape`` for a layer's ``reset_parameters`` to fill;
    ``dtype``/``device`` are PyTorch's factory arguments (default: the default dtype, 'cpu')."""
    array = np.zeros(shape, dtype=np.dtype(dtype or get_default_dtype()))
    return Parameter(compat.to_device(array, device or "cpu"))
