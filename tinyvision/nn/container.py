"""Containers: Modules that hold other Modules and add only the way they are indexed or run.

``Sequential`` runs its children in order, ``ModuleList`` and ``ModuleDict`` only register
them (so that their parameters are found and their state_dict keys get the ``'0.'``/``'key.'``
prefix); the forward is the owner's. ``ParameterList`` and ``ParameterDict`` do the same for
Parameters: registered under their index ('0', '1', ...) or key, so that they are trained,
moved and saved like a layer's own (state_dict keys ``<name>.0``, ``<name>.key``), as torch's;
a plain Tensor put in is wrapped in a Parameter, as torch does.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Iterable, Iterator, Mapping

from tinyvision.autograd.tensor import Tensor
from tinyvision.nn.module import Module
from tinyvision.nn.parameter import Parameter


def _index(i: int, n: int, what: str) -> int:
    if not -n <= i < n:
        raise IndexError(f"{what}: index {i} is out of range for length {n}")
    return i % n


class _DictOf:
    """The dict protocol of ModuleDict and ParameterDict, over the registry named ``_store``
    (``_modules`` or ``_parameters``); each class says how ``d[key] = value`` registers."""

    _store: str

    def _items(self) -> dict:
        return getattr(self, self._store)

    def __getitem__(self, key: str) -> Any:
        return self._items()[key]

    def __delitem__(self, key: str) -> None:
        del self._items()[key]

    def __len__(self) -> int:
        return len(self._items())

    def __iter__(self) -> Iterator[str]:
        return iter(self._items())

    def __contains__(self, key: str) -> bool:
        return key in self._items()

    def keys(self) -> Iterable[str]:
        return self._items().keys()

    def values(self) -> Iterable[Any]:
        return self._items().values()

    def items(self) -> Iterable[tuple[str, Any]]:
        return self._items().items()

    def pop(self, key: str) -> Any:
        return self._items().pop(key)

    def update(self, entries: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> None:
        for key, value in (entries.items() if isinstance(entries, Mapping) else entries):
            self[key] = value


class Sequential(Module):
    """Runs its modules in order: ``Sequential(a, b, c)(x) == c(b(a(x)))``.

    Children are named '0', '1', ... (or by the keys of an OrderedDict), which is where
    state_dict keys such as ``features.0.weight`` come from.
    """

    def __init__(self, *args: Any) -> None:
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for name, module in args[0].items():
                self.add_module(name, module)
        else:
            for i, module in enumerate(args):
                self.add_module(str(i), module)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, idx: int | slice) -> Any:
        if isinstance(idx, slice):
            return type(self)(OrderedDict(list(self._modules.items())[idx]))
        return list(self._modules.values())[_index(idx, len(self), "Sequential")]

    def __setitem__(self, idx: int, module: Module) -> None:
        key = list(self._modules)[_index(idx, len(self), "Sequential")]
        self.add_module(key, module)

    def __delitem__(self, idx: int | slice) -> None:
        keys = list(self._modules)
        for key in keys[idx] if isinstance(idx, slice) else [keys[_index(idx, len(self), "Sequential")]]:
            del self._modules[key]
        # renumber so that the names stay '0', '1', ... as in PyTorch
        items = list(self._modules.values())
        self._modules.clear()
        for i, module in enumerate(items):
            self._modules[str(i)] = module

    def append(self, module: Module) -> "Sequential":
        self.add_module(str(len(self)), module)
        return self

    def forward(self, input: Any) -> Any:
        for module in self:
            input = module(input)
        return input


class ModuleList(Module):
    """A list of modules, registered as children '0', '1', ...; no forward of its own."""

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, idx: int | slice) -> Any:
        if isinstance(idx, slice):
            return type(self)(list(self._modules.values())[idx])
        return self._modules[str(_index(idx, len(self), "ModuleList"))]

    def __setitem__(self, idx: int, module: Module) -> None:
        self.add_module(str(_index(idx, len(self), "ModuleList")), module)

    def __iadd__(self, modules: Iterable[Module]) -> "ModuleList":
        return self.extend(modules)

    def append(self, module: Module) -> "ModuleList":
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> "ModuleList":
        for module in modules:
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> None:
        items = list(self._modules.values())
        items.insert(index, module)
        self._modules.clear()
        self.extend(items)


class ModuleDict(_DictOf, Module):
    """An ordered dict of modules, registered as children under their keys."""

    _store = "_modules"

    def __init__(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)


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


class ParameterDict(_DictOf, Module):
    """An ordered dict of Parameters keyed by str."""

    _store = "_parameters"

    def __init__(self, parameters: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None) -> None:
        super().__init__()
        if parameters is not None:
            self.update(parameters)

    def __setitem__(self, key: str, value: Any) -> None:
        self.register_parameter(key, _as_parameter(value, "ParameterDict"))

    def extra_repr(self) -> str:
        return "\n".join(f"({k}): {_describe(p)}" for k, p in self.items())
