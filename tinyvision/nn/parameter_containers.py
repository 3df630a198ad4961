"""``ParameterList`` and ``ParameterDict``: Parameters held in a list or a dict, registered
under their index ('0', '1', ...) or key, so that they are trained, moved and saved like a
layer's own (state_dict keys ``<name>.0``, ``<name>.key``), as torch's. A plain Tensor put in
is wrapped in a Parameter, as torch does."""
from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping

from tinyvision.autograd.tensor import Tensor
from tinyvision.nn.module import Module
from tinyvision.nn.parameter import Parameter


def _as_parameter(value: Any, where: str) -> Parameter:
    if isinstance(value, Parameter):
        return value
    if isinstance(value, Tensor):
        return Parameter(value)
    raise TypeError(f"{where}: expected a Parameter or Tensor, got {type(value).__name__}")


def _describe(p: Parameter) -> str:
    size = "x".join(str(s) for s in p.shape) or "()"
    return f"Parameter containing: [{p.dtype} of size {size}]"


class ParameterList(Module):
    """A list of Parameters (index with ints or slices, append, extend, iterate)."""

    def __init__(self, values: Iterable[Any] | None = None) -> None:
        super().__init__()
        if values is not None:
            self.extend(values)

    def __len__(self) -> int:
        return len(self._parameters)

    def __iter__(self) -> Iterator[Parameter]:
        return iter(self._parameters.values())

    def __getitem__(self, idx: int | slice) -> Any:
        items = list(self._parameters.values())
        if isinstance(idx, slice):
            return type(self)(items[idx])
        if not -len(items) <= idx < len(items):
            raise IndexError(f"ParameterList: index {idx} is out of range for length {len(items)}")
        return items[idx]

    def __setitem__(self, idx: int, value: Any) -> None:
        n = len(self)
        if not -n <= idx < n:
            raise IndexError(f"ParameterList: index {idx} is out of range for length {n}")
        self.register_parameter(str(idx % n), _as_parameter(value, "ParameterList"))

    def append(self, value: Any) -> "ParameterList":
        self.register_parameter(str(len(self)), _as_parameter(value, "ParameterList"))
        return self

    def extend(self, values: Iterable[Any]) -> "ParameterList":
        for value in values:
            self.append(value)
        return self

    def extra_repr(self) -> str:
        return "\n".join(f"({i}): {_describe(p)}" for i, p in enumerate(self))


class ParameterDict(Module):
    """An ordered dict of Parameters keyed by str."""

    def __init__(self, parameters: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None) -> None:
        super().__init__()
        if parameters is not None:
            self.update(parameters)

    def __getitem__(self, key: str) -> Parameter:
        return self._parameters[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.register_parameter(key, _as_parameter(value, "ParameterDict"))

    def __delitem__(self, key: str) -> None:
        del self._parameters[key]

    def __len__(self) -> int:
        return len(self._parameters)

    def __iter__(self) -> Iterator[str]:
        return iter(self._parameters)

    def __contains__(self, key: str) -> bool:
        return key in self._parameters

    def keys(self) -> Iterable[str]:
        return self._parameters.keys()

    def values(self) -> Iterable[Parameter]:
        return self._parameters.values()

    def items(self) -> Iterable[tuple[str, Parameter]]:
        return self._parameters.items()

    def pop(self, key: str) -> Parameter:
        return self._parameters.pop(key)

    def update(self, parameters: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> None:
        for key, value in (parameters.items() if isinstance(parameters, Mapping) else parameters):
            self[key] = value

    def extra_repr(self) -> str:
        return "\n".join(f"({k}): {_describe(p)}" for k, p in self.items())
