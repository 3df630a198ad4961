"""Module: the PyTorch-shaped container of parameters, buffers and sub-modules.

A model is a tree of Modules. Each node keeps three ordered dicts, filled by plain attribute
assignment (``self.fc = Linear(3, 4)`` registers a child, ``self.w = Parameter(...)`` a
parameter) or by ``register_buffer``:

    _parameters   name -> Parameter      trained tensors (requires_grad)
    _buffers      name -> Tensor         state that is not trained (BatchNorm running stats)
    _modules      name -> Module         children

``state_dict()`` walks the tree in PyTorch's order (own parameters, own persistent buffers,
then each child recursively, dotted names), so that a torchvision/timm ``state_dict`` loads
into the same architecture unchanged, and ``load_state_dict`` reports every missing,
unexpected and mis-shaped key in one error.

Parameter lives in ``nn/parameter.py`` and the containers (Sequential, ModuleList,
ModuleDict) in ``nn/container.py``; both are importable from here too, as they were before
the split.
"""
from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import Any, Callable, Iterator, Mapping, NamedTuple

import numpy as np

# one handle class for Tensor hooks and Module hooks, as torch.utils.hooks.RemovableHandle
from tinyvision.autograd.function import RemovableHandle
from tinyvision.autograd.tensor import Tensor
from tinyvision.kernels import compat
# empty_parameter is imported for the layer files that import it from here
from tinyvision.nn.parameter import Parameter, empty_parameter  # noqa: F401
from tinyvision.serialization import as_array


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict(strict=False)`` returns (PyTorch's ``_IncompatibleKeys``)."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def _to_array(value: Any, key: str):
    """A state_dict value as a raw array: NumPy/CuPy arrays, tinyvision Tensors, numbers and
    torch tensors (recognised by their module name, so torch is never imported here)."""
    array = as_array(value)
    if array is not None:
        return array
    if isinstance(value, (int, float, bool)):
        return np.asarray(value)
    raise TypeError(f"load_state_dict: value for key {key!r} is a {type(value).__name__}; "
                    "expected a NumPy array, a tinyvision Tensor or a torch tensor")


def _addindent(text: str, spaces: int) -> str:
    lines = text.split("\n")
    return lines[0] + "".join("\n" + " " * spaces + line for line in lines[1:])


class Module:
    """Base class of every layer and model; subclasses define ``forward``.

    Calling the module (``m(x)``) runs the forward pre-hooks, ``forward`` and the forward
    hooks. ``training`` (True after construction) is switched by ``train()`` / ``eval()``
    for the whole tree; Dropout and BatchNorm read it.
    """

    training: bool

    def __init__(self) -> None:
        # object.__setattr__ because our __setattr__ needs these dicts to exist
        for name in ("_parameters", "_buffers", "_modules", "_forward_hooks", "_forward_pre_hooks"):
            object.__setattr__(self, name, OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "training", True)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no forward() method")

    # ----------------------------------------------------------------- registration
    def _check_name(self, name: str, kind: str) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {kind} before Module.__init__() call")
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"{kind} name must be a non-empty string without '.', got {name!r}")

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        self._check_name(name, "parameter")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign {type(param).__name__} as parameter {name!r} "
                            "(a Parameter or None is required)")
        self._forget(name, keep=self._parameters)
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """A non-trained tensor that moves with ``to()``; in the state_dict unless
        ``persistent=False``."""
        self._check_name(name, "buffer")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign {type(tensor).__name__} as buffer {name!r} "
                            "(a Tensor or None is required)")
        self._forget(name, keep=self._buffers)
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)

    def add_module(self, name: str, module: "Module | None") -> None:
        self._check_name(name, "module")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._forget(name, keep=self._modules)  # a replaced child keeps its place: Sequential runs in this order
        self._modules[name] = module

    register_module = add_module

    def _forget(self, name: str, keep: dict | None = None) -> None:
        """Drop ``name`` from the instance dict and every registry but ``keep``, the one it is
        about to be (re)registered in: a replaced entry keeps its place, so the state_dict's
        key order stays PyTorch's."""
        for d in (self._parameters, self._buffers, self._modules, self.__dict__):
            if d is not keep:
                d.pop(name, None)
        self._non_persistent_buffers.discard(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, Parameter):
            self.register_parameter(name, value)
        elif isinstance(value, Module):
            self.add_module(name, value)
        elif "_parameters" in self.__dict__ and name in self._parameters:
            self.register_parameter(name, value)  # None, or a TypeError naming the value
        elif "_modules" in self.__dict__ and name in self._modules:
            self.add_module(name, value)
        elif "_buffers" in self.__dict__ and name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} as buffer {name!r} "
                                "(a Tensor or None is required)")
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:  # only called when normal lookup fails
        d = self.__dict__
        for registry in ("_parameters", "_buffers", "_modules"):
            if registry in d and name in d[registry]:
                return d[registry][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        if name in self._parameters or name in self._buffers or name in self._modules:
            self._forget(name)
        else:
            object.__delattr__(self, name)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers) | set(self._modules))

    # ----------------------------------------------------------------- walking the tree
    def named_modules(self, memo: set | None = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, "Module"]]:
        """(dotted name, module) for self and every descendant, pre-order."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(memo, f"{prefix}.{name}" if prefix else name, remove_duplicate)

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        seen = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self) -> Iterator["Module"]:
        for _, m in self.named_children():
            yield m

    def _named_members(self, registry: str, prefix: str, recurse: bool,
                       remove_duplicate: bool) -> Iterator[tuple[str, Tensor]]:
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        seen: set[int] = set()
        for mod_prefix, module in modules:
            for name, t in getattr(module, registry).items():
                if t is None or (remove_duplicate and id(t) in seen):
                    continue
                seen.add(id(t))
                yield (f"{mod_prefix}.{name}" if mod_prefix else name), t

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, Parameter), module by module; a shared parameter comes once."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target: str) -> "Module":
        """The descendant at dotted path ``target`` ('' is self), e.g. ``'layer1.0.conv1'``."""
        module = self
        for part in target.split(".") if target else []:
            if part not in module._modules:
                raise AttributeError(f"{type(module).__name__} has no submodule {part!r} (looking for {target!r})")
            module = module._modules[part]
        return module

    # ----------------------------------------------------------------- modes and grads
    def train(self, mode: bool = True) -> "Module":
        """Set training mode on self and every descendant (Dropout, BatchNorm read it)."""
        if not isinstance(mode, bool):
            raise ValueError(f"train(mode): mode must be a bool, got {mode!r}")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.data[...] = 0

    def apply(self, fn: Callable[["Module"], None]) -> "Module":
        """Call ``fn`` on every descendant (children first) and then on self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ----------------------------------------------------------------- devices and dtypes
    def _apply_to_arrays(self, fn: Callable[[Any], Any]) -> "Module":
        """Replace the array of every parameter, gradient and buffer by ``fn(array)``, in
        place, so that the Parameter objects (held by an optimizer) stay the same."""
        for m in self.modules():
            for t in itertools.chain(m._parameters.values(), m._buffers.values()):
                if t is None:
                    continue
                t.data = fn(t.data)
                if t.grad is not None:
                    t.grad.data = fn(t.grad.data)
        return self

    def to(self, *args: Any, dtype: Any = None, device: str | None = None) -> "Module":
        """``m.to('cuda')``, ``m.to(np.float64)``, ``m.to('cpu', np.float32)``. The dtype
        applies to floating-point tensors only (an int64 ``num_batches_tracked`` stays)."""
        for a in args:
            if isinstance(a, str):
                device = a
            else:
                dtype = a
        if device is not None:
            device = compat.check_device(device)
        if dtype is not None:
            dtype = np.dtype(dtype)
            if dtype.kind != "f":
                raise TypeError(f"Module.to: only floating-point dtypes are allowed, got {dtype}")

        def convert(a):
            if dtype is not None and a.dtype.kind == "f":
                a = a.astype(dtype, copy=False)
            return compat.to_device(a, device) if device is not None else a

        return self._apply_to_arrays(convert)

    def float(self) -> "Module":
        return self.to(np.float32)

    def double(self) -> "Module":
        return self.to(np.float64)

    def cpu(self) -> "Module":
        return self.to("cpu")

    def cuda(self) -> "Module":
        return self.to("cuda")

    # ----------------------------------------------------------------- state_dict
    def _state_items(self) -> Iterator[tuple[str, Tensor]]:
        """This module's own entries: parameters, then persistent buffers (None skipped)."""
        for name, p in self._parameters.items():
            if p is not None:
                yield name, p
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers:
                yield name, b

    def state_dict(self, destination: dict | None = None, prefix: str = "",
                   keep_vars: bool = False) -> "OrderedDict[str, Tensor]":
        """Dotted name -> Tensor, in PyTorch's order. Values share memory with the module
        (detached) unless ``keep_vars=True``, which returns the Parameters themselves."""
        if destination is None:
            destination = OrderedDict()
        for name, t in self._state_items():
            destination[prefix + name] = t if keep_vars else t.detach()
        for name, child in self._modules.items():
            if child is not None:
                child.state_dict(destination, prefix + name + ".", keep_vars)
        return destination

    def _fill_missing_state(self, state_dict: Mapping[str, Any], prefix: str) -> dict[str, Any]:
        """A subclass may supply defaults for keys that old checkpoints lack (BatchNorm's
        ``num_batches_tracked``); returns {key: value}."""
        return {}

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy ``state_dict`` values into the parameters and buffers (cast to their dtype).

        Values may be NumPy arrays, tinyvision Tensors or torch tensors. Every problem is
        collected first and reported in one error, before anything is copied: missing and
        unexpected keys (only when ``strict``) and shape mismatches (always, as in PyTorch).
        Returns ``(missing_keys, unexpected_keys)``.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"load_state_dict: expected a dict, got {type(state_dict).__name__}")
        state = dict(state_dict)
        for prefix, module in self.named_modules():
            state.update(module._fill_missing_state(state, prefix + "." if prefix else ""))
        ours = self.state_dict(keep_vars=True)
        missing = [k for k in ours if k not in state]
        unexpected = [k for k in state_dict if k not in ours]
        copies, mismatched = [], []
        for key, target in ours.items():
            if key not in state:
                continue
            value = _to_array(state[key], key)
            if tuple(value.shape) != target.shape:
                mismatched.append(f"size mismatch for {key}: copying a param with shape "
                                  f"{tuple(value.shape)} from checkpoint, the shape in current model "
                                  f"is {target.shape}.")
            else:
                copies.append((target, value))
        errors = list(mismatched)
        if strict and unexpected:
            errors.insert(0, "Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected) + ".")
        if strict and missing:
            errors.insert(0, "Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ".")
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t"
                               + "\n\t".join(errors))
        for target, value in copies:
            value = compat.to_device(compat.array_module(value).asarray(value), target.device)
            target.data[...] = value.astype(target.dtype, copy=False)
        return IncompatibleKeys(missing, unexpected)

    # ----------------------------------------------------------------- calling and hooks
    def register_forward_pre_hook(self, hook: Callable) -> RemovableHandle:
        """``hook(module, args)`` runs before forward; it may return new args (a tuple, or
        one value that becomes a 1-tuple)."""
        handle = RemovableHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[handle.id] = hook
        return handle

    def register_forward_hook(self, hook: Callable) -> RemovableHandle:
        """``hook(module, args, output)`` runs after forward; it may return a new output."""
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        for hook in list(self._forward_pre_hooks.values()):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        output = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            result = hook(self, args, output)
            if result is not None:
                output = result
        return output

    # ----------------------------------------------------------------- printing
    def extra_repr(self) -> str:
        """The text inside the parentheses of this module's repr (its constructor args)."""
        return ""

    def __repr__(self) -> str:
        lines = self.extra_repr().split("\n") if self.extra_repr() else []
        lines += [f"({name}): " + _addindent(repr(child), 2) for name, child in self._modules.items()]
        name = type(self).__name__
        if not self._modules and len(lines) <= 1:
            return f"{name}({''.join(lines)})"
        return name + "(\n  " + "\n  ".join(lines) + "\n)"


class Identity(Module):
    """Returns its input; accepts and ignores any constructor arguments (as PyTorch)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, input: Any) -> Any:
        return input


_MOVED_TO_CONTAINER = ("Sequential", "ModuleList", "ModuleDict")


def __getattr__(name: str) -> Any:
    """``from tinyvision.nn.module import Sequential`` keeps working: the containers moved to
    nn/container.py, which imports this module, so they are looked up at call time."""
    if name in _MOVED_TO_CONTAINER:
        from tinyvision.nn import container

        return getattr(container, name)
    raise AttributeError(f"module 'tinyvision.nn.module' has no attribute {name!r}")
