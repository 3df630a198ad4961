"""Function: one differentiable op, its forward and backward side by side.

An op is a subclass of :class:`Function` with two static methods on raw arrays::

    class Exp(Function):
        @staticmethod
        def forward(ctx, x):            # y = e^x
            y = xp(x).exp(x)
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, grad):        # dL/dx = dL/dy * e^x
            (y,) = ctx.saved_tensors
            return grad * y

``Exp.apply(tensor)`` unwraps the Tensors, runs ``forward`` and, when some input requires a
gradient and grad mode is on, records a :class:`Node` that ``Tensor.backward`` later visits.
Broadcasting is handled once, here: every gradient is summed back to its input's shape.
"""
from __future__ import annotations

import contextlib
import itertools
import threading
from typing import Any

from tinyvision.kernels.compat import array_module

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "grad_enabled", True)


def set_grad_enabled(mode: bool) -> None:
    _state.grad_enabled = bool(mode)


class no_grad(contextlib.ContextDecorator):
    """Context manager and decorator: ops inside record no graph (inference, updates)."""

    mode = False

    def __init__(self) -> None:
        # a stack, not one slot: a decorated function may call itself, and each exit must
        # restore what its own enter saw
        self._prev: list[bool] = []

    def __enter__(self) -> None:
        self._prev.append(is_grad_enabled())
        set_grad_enabled(self.mode)

    def __exit__(self, *exc: Any) -> None:
        set_grad_enabled(self._prev.pop())


class enable_grad(no_grad):
    """The opposite of :class:`no_grad` (e.g. to take an input gradient inside eval code)."""

    mode = True


class Context:
    """What forward leaves for backward: saved arrays and any non-array facts (shapes, axes).

    ``save_for_backward`` also notes the version of every saved array that is (or views) an
    input Tensor's array; ``apply`` adds the output when it was saved. If an in-place op
    changes one of them before backward, ``check_versions`` refuses, as PyTorch does, rather
    than compute a gradient from the changed values.
    """

    def __init__(self, inputs: Any = ()) -> None:
        self.saved_tensors: tuple = ()
        self.needs_input_grad: tuple[bool, ...] = ()
        self._inputs = inputs  # the input Tensors, only while forward runs
        # (version counter, its value when saved, the saved array, its role): the array's
        # dtype and shape go into the error message, formatted only then
        self._versions: list[tuple] = []

    def save_for_backward(self, *arrays: Any) -> None:
        self.saved_tensors = arrays
        for a in arrays:
            t = holder(a, self._inputs)
            if t is not None:
                self._versions.append((t._version_counter, t._version_counter[0], a, "an input of"))

    def check_versions(self, op: str) -> None:
        for counter, version, a, role in self._versions:
            if counter[0] != version:
                raise RuntimeError(
                    "one of the variables needed for gradient computation has been modified by "
                    f"an inplace operation: [{a.dtype} {list(a.shape)}], {role} {op}Backward, is at version "
                    f"{counter[0]}; expected version {version} instead. Hint: make the "
                    "in-place change on a .clone(), or after backward()."
                )


def holder(array: Any, tensors: Any) -> Any:
    """The Tensor among ``tensors`` whose array is ``array`` or shares memory with it (a view:
    reshape, slice, transpose), else None."""
    for t in tensors:
        if t.data is array:
            return t
    if getattr(array, "base", None) is None:
        return None
    xp = array_module(array)
    return next((t for t in tensors if xp.may_share_memory(array, t.data)), None)


def sum_to(grad, shape: tuple[int, ...]):
    """Sum a broadcast gradient back to ``shape``.

    If ``x`` of shape (3, 1) was broadcast to (2, 3, 4), every copy of ``x[i, 0]`` got a share
    of the gradient, so dL/dx sums the leading axis and the broadcast size-1 axis.
    """
    if grad.shape == tuple(shape):
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1
    )
    grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


class Node:
    """A recorded call: the Function, its context, and the Tensors it was applied to."""

    __slots__ = ("fn", "ctx", "inputs", "freed", "hooks", "retained", "__weakref__")

    def __init__(self, fn: type["Function"], ctx: Context, inputs: tuple) -> None:
        self.fn = fn
        self.ctx = ctx
        self.inputs = inputs  # Tensors, or None where the argument was not a Tensor
        self.freed = False
        self.hooks: dict = {}  # the output Tensor's register_hook functions, by handle id
        self.retained = None  # a weakref to the output Tensor when it retain_grad()s

    @property
    def name(self) -> str:
        return self.fn.__name__

    def __repr__(self) -> str:
        return f"<{self.name}Backward>"


def check_history(op: str, t: Any) -> None:
    """Refuse a tensor whose recorded history is out of date: another tensor sharing its memory
    (a view of it, or the tensor it views) was changed in place *and recorded*, so t's values
    changed without t's grad_fn knowing. PyTorch rebases such views onto the change; here that
    is refused rather than differentiated wrongly."""
    if t._history_mark is not None and t._history_mark != t._version_counter[1]:
        raise RuntimeError(
            f"{op}: this tensor's memory was changed in place through a view of it (or through "
            "the tensor it is a view of) while a graph was recorded, so its own history is out "
            "of date; PyTorch would rebase it, tinyvision refuses. Make the in-place change on "
            "this tensor itself, or take the view from a .clone().")


class RemovableHandle:
    """What ``register_hook`` returns: ``.remove()`` unregisters the hook (also a context
    manager). The hooks live in a dict keyed by the handle's id, so removal is exact."""

    _ids = itertools.count()

    def __init__(self, hooks: dict) -> None:
        self.hooks = hooks
        self.id = next(RemovableHandle._ids)

    def remove(self) -> None:
        self.hooks.pop(self.id, None)

    def __enter__(self) -> "RemovableHandle":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


class Function:
    """Base class of every differentiable op (see the module docstring)."""

    @staticmethod
    def forward(ctx: Context, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any):
        """Run the op on Tensors (and plain Python values) and return a Tensor."""
        Tensor = _Tensor or _load_tensor()
        tensors = [a for a in args if isinstance(a, Tensor)]
        if is_grad_enabled():
            for t in tensors:
                if t._history_mark != t._version_counter[1] and t._history_mark is not None:
                    check_history(cls.__name__, t)
        arrays = [a.data if isinstance(a, Tensor) else a for a in args]
        ctx = Context(tensors)
        ctx.needs_input_grad = tuple([isinstance(a, Tensor) and a.requires_grad for a in args])
        out = cls.forward(ctx, *arrays, **kwargs)
        ctx._inputs = ()
        # a view of an input (reshape, slice, transpose) shares that input's version counter,
        # so an in-place change through either one is seen through both, as in PyTorch
        base = holder(out, tensors) if getattr(out, "base", None) is not None else None
        # no node when grad mode is off, no input wants a gradient, or the result is integer
        # or bool (x.long(), argmax-like results: not differentiable, as in PyTorch)
        if not (is_grad_enabled() and any(ctx.needs_input_grad)) or out.dtype.kind != "f":
            return Tensor(out, _view_of=base)
        inputs = tuple([a if isinstance(a, Tensor) else None for a in args])
        result = Tensor(out, grad_fn=Node(cls, ctx, inputs), _view_of=base)
        for a in ctx.saved_tensors:
            if a is out:  # the output was saved (exp, sigmoid...): it has a version too
                ctx._versions.append((result._version_counter, result._version_counter[0], out, "the output of"))
        return result


_Tensor: Any = None


def _load_tensor() -> Any:
    """The Tensor class, from the layer above (tensor.py imports this module), fetched on the
    first ``apply`` and kept: an import statement in ``apply`` would cost every op call."""
    global _Tensor
    from tinyvision.autograd.tensor import Tensor

    _Tensor = Tensor
    return Tensor


def checked_backward(node: Node, grad) -> list:
    """Call ``node``'s backward and bring each gradient to its input's shape and dtype."""
    if node.freed:  # a second backward() through a graph that the first one freed
        raise RuntimeError(
            f"Trying to backward through the graph a second time ({node.name}): its saved "
            "arrays were freed after the first backward. Pass retain_graph=True to the first "
            "backward() if you need to go through it again."
        )
    node.ctx.check_versions(node.name)
    grads = node.fn.backward(node.ctx, grad)
    if not isinstance(grads, tuple):
        grads = (grads,)
    if len(grads) != len(node.inputs):
        raise RuntimeError(
            f"{node.name}.backward returned {len(grads)} gradients for {len(node.inputs)} inputs"
        )
    out = []
    for t, g in zip(node.inputs, grads):
        if t is None or g is None or not t.requires_grad:
            out.append(None)
            continue
        g = sum_to(g, t.shape)
        if g.dtype != t.dtype:
            g = g.astype(t.dtype)
        out.append(g)
    return out


def run_backward(root, grad, retain_graph: bool) -> None:
    """Reverse-mode sweep from ``root``: topological order, iterative, gradients summed.

    1. Collect every node reachable from ``root`` with an explicit stack (no recursion, so
       a 1,000-layer network cannot hit Python's recursion limit) and order them so that a
       node comes after everything that consumed its output.
    2. Walk that order: a node's output gradient is complete when we reach it, because all of
       its consumers came first. Hand each input its share; leaves accumulate into ``.grad``.
    3. Unless ``retain_graph``, drop each node's saved arrays once used (the graph is freed).
    """
    order: list[Node] = []
    seen: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root.grad_fn, False)]
    while stack:
        node, children_done = stack.pop()
        if children_done:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for t in node.inputs or ():
            if t is not None and t.grad_fn is not None and id(t.grad_fn) not in seen:
                stack.append((t.grad_fn, False))
    order.reverse()  # post-order reversed = every consumer before what it consumed

    grads: dict[int, Any] = {id(root.grad_fn): grad}
    leaf_grads: dict[int, Any] = {}  # id(leaf) -> its gradient summed so far
    complete_after = leaves_complete_after(order)
    for i, node in enumerate(order):
        g = grads.pop(id(node), None)
        if g is not None:
            g = run_hooks(node.hooks, g)  # the output's gradient is complete here
            kept = node.retained() if node.retained is not None else None
            if kept is not None:
                kept._accumulate_grad(g)
            input_grads = checked_backward(node, g)
            for t, gi in zip(node.inputs, input_grads):
                if gi is None:
                    continue
                store, key = (leaf_grads, id(t)) if t.grad_fn is None else (grads, id(t.grad_fn))
                store[key] = gi if key not in store else store[key] + gi
            if not retain_graph:  # drop saved arrays and edges so the memory goes back now
                node.ctx = None
                node.inputs = ()
                node.freed = True
        for leaf in complete_after.get(i, ()):  # no later node feeds these leaves: they are done
            g_leaf = leaf_grads.pop(id(leaf), None)
            if g_leaf is None:
                continue
            leaf._accumulate_grad(run_hooks(leaf._hooks, g_leaf))  # hooks see the whole gradient
            for hook in list((leaf._post_accumulate_hooks or {}).values()):
                hook(leaf)


def leaves_complete_after(order: list[Node]) -> dict[int, list]:
    """{i: the leaves whose last feeding node is ``order[i]``}. A leaf's gradient is complete
    once that node has run, so it is accumulated into ``.grad`` right there and its
    post-accumulate hooks fire while the walk goes on (DistributedDataParallel all-reduces a
    bucket of gradients while backward computes the next ones; PyTorch's AccumulateGrad node
    plays this part)."""
    last: dict[int, tuple[int, Any]] = {}
    for i, node in enumerate(order):
        for t in node.inputs or ():
            if t is not None and t.grad_fn is None:
                last[id(t)] = (i, t)
    ready: dict[int, list] = {}
    for i, t in last.values():
        ready.setdefault(i, []).append(t)
    return ready


def run_hooks(hooks: dict, grad: Any) -> Any:
    """Call each ``register_hook`` function on the gradient; one that returns a Tensor
    replaces the gradient for the hooks after it and for the rest of the walk."""
    if not hooks:
        return grad
    from tinyvision.autograd.tensor import Tensor

    for hook in list(hooks.values()):
        new = hook(Tensor(grad))
        if new is not None:
            grad = new.data if isinstance(new, Tensor) else new
    return grad
