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
import threading
from typing import Any

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
    """What forward leaves for backward: saved arrays and any non-array facts (shapes, axes)."""

    def __init__(self) -> None:
        self.saved_tensors: tuple = ()
        self.needs_input_grad: tuple[bool, ...] = ()

    def save_for_backward(self, *arrays: Any) -> None:
        self.saved_tensors = arrays


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

    __slots__ = ("fn", "ctx", "inputs", "freed", "__weakref__")

    def __init__(self, fn: type["Function"], ctx: Context, inputs: tuple) -> None:
        self.fn = fn
        self.ctx = ctx
        self.inputs = inputs  # Tensors, or None where the argument was not a Tensor
        self.freed = False

    @property
    def name(self) -> str:
        return self.fn.__name__

    def __repr__(self) -> str:
        return f"<{self.name}Backward>"


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
        arrays = [a.data if isinstance(a, Tensor) else a for a in args]
        ctx = Context()
        ctx.needs_input_grad = tuple([isinstance(a, Tensor) and a.requires_grad for a in args])
        out = cls.forward(ctx, *arrays, **kwargs)
        # no node when grad mode is off, no input wants a gradient, or the result is integer
        # or bool (x.long(), argmax-like results: not differentiable, as in PyTorch)
        if not (is_grad_enabled() and any(ctx.needs_input_grad)) or out.dtype.kind != "f":
            return Tensor(out)
        inputs = tuple(a if isinstance(a, Tensor) else None for a in args)
        return Tensor(out, grad_fn=Node(cls, ctx, inputs))


def checked_backward(node: Node, grad) -> list:
    """Call ``node``'s backward and bring each gradient to its input's shape and dtype."""
    if node.freed:  # a second backward() through a graph that the first one freed
        raise RuntimeError(
            f"Trying to backward through the graph a second time ({node.name}): its saved "
            "arrays were freed after the first backward. Pass retain_graph=True to the first "
            "backward() if you need to go through it again."
        )
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
    if root._retains_grad:
        root._accumulate_grad(grad)
    ready, fed = leaves_complete_after(order), set()
    for i, node in enumerate(order):
        g = grads.pop(id(node), None)
        if g is None:
            run_post_accumulate_hooks(ready.get(i, ()), fed)
            continue
        input_grads = checked_backward(node, g)
        for t, gi in zip(node.inputs, input_grads):
            if gi is None:
                continue
            if t.grad_fn is None:  # a leaf: accumulate, as PyTorch does
                t._accumulate_grad(gi)
                fed.add(id(t))
            else:
                key = id(t.grad_fn)
                grads[key] = gi if key not in grads else grads[key] + gi
            if t.grad_fn is not None and t._retains_grad:
                t._accumulate_grad(gi)
        if not retain_graph:  # drop saved arrays and edges so the memory goes back now
            node.ctx = None
            node.inputs = ()
            node.freed = True
        run_post_accumulate_hooks(ready.get(i, ()), fed)


def leaves_complete_after(order: list[Node]) -> dict[int, list]:
    """{i: leaves with post-accumulate hooks whose last feeding node is ``order[i]``}: their
    gradient is complete once that node has run, so the hooks can fire while the walk goes on
    (DistributedDataParallel all-reduces a bucket of gradients while backward computes the
    next ones; PyTorch's AccumulateGrad node plays this part)."""
    last: dict[int, tuple[int, Any]] = {}
    for i, node in enumerate(order):
        for t in node.inputs or ():
            if t is not None and t.grad_fn is None and t._post_accumulate_hooks:
                last[id(t)] = (i, t)
    ready: dict[int, list] = {}
    for i, t in last.values():
        ready.setdefault(i, []).append(t)
    return ready


def run_post_accumulate_hooks(leaves: list, fed: set[int]) -> None:
    """Call ``hook(leaf)`` for each leaf that received a gradient in this walk."""
    for t in leaves:
        if id(t) in fed:
            for hook in list(t._post_accumulate_hooks.values()):
                hook(t)


# at the end: tensor.py imports this module (Node, run_backward) before it defines Tensor
from tinyvision.autograd.tensor import Tensor  # noqa: E402
