"""Every rung of the kernel ladder defines what the dispatch asks it for.

``kernels/dispatch.py`` reaches a kernel by strings: ``kernel("conv", "conv2d_forward", x)``
imports ``tinyvision.kernels.<rung>.conv`` and takes ``conv2d_forward`` from it, for whichever
rung runs (``with use("reference")`` can force any of them). A name missing from one rung is
an AttributeError only when that rung runs, e.g. on the GPU. So this test reads every
``kernel(topic, name, ...)`` call in the library (statically, with ``ast``), and checks that
each rung's module for that topic defines each name, with one signature, and that a rung's
``__all__`` (the ladder it declares) is exactly the set of names the library reaches.
The GPU rung imports without CuPy (its kernels compile at first call), so it is read the same way.
"""
from __future__ import annotations

import ast
import importlib
import inspect
from collections import defaultdict
from pathlib import Path

import pytest

from tinyvision.kernels import dispatch

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted([*(ROOT / "tinyvision").rglob("*.py"), *(ROOT / "kernels").rglob("*.py")])


def _is_dispatch_call(call: ast.Call) -> bool:
    """``kernel(...)`` or ``dispatch.kernel(...)``."""
    f = call.func
    return (isinstance(f, ast.Name) and f.id == "kernel") or (
        isinstance(f, ast.Attribute) and f.attr == "kernel" and isinstance(f.value, ast.Name)
        and f.value.id == "dispatch")


def _string(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}


def _resolve_parameter(tree: ast.Module, parents: dict, node: ast.Name) -> list[str] | None:
    """A kernel name passed in as a parameter of ``SomeFunction.forward(ctx, ..., name, ...)``:
    the string literals that ``SomeFunction.apply(...)`` calls in the same file pass in that
    position (apply's arguments are forward's without ``ctx``). None if it cannot be resolved."""
    function = parents.get(node)
    while function is not None and not isinstance(function, ast.FunctionDef):
        function = parents.get(function)
    owner = parents.get(function) if function is not None else None
    params = [a.arg for a in function.args.args] if function is not None else []
    if not isinstance(owner, ast.ClassDef) or function.name != "forward" or node.id not in params:
        return None
    position = params.index(node.id) - 1  # apply(*args) -> forward(ctx, *args)
    values = []
    for call in ast.walk(tree):
        if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "apply"
                and isinstance(call.func.value, ast.Name) and call.func.value.id == owner.name):
            value = _string(call.args[position]) if position < len(call.args) else None
            if value is None:
                return None
            values.append(value)
    return values or None


def dispatched() -> tuple[dict[str, set[str]], list[str]]:
    """{topic: {names the library dispatches}} and the calls that could not be read."""
    names: dict[str, set[str]] = defaultdict(set)
    unreadable = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(), str(path))
        parents = _parents(tree)
        for call in ast.walk(tree):
            if not (isinstance(call, ast.Call) and _is_dispatch_call(call)) or path.name == "dispatch.py":
                continue
            where = f"{path.relative_to(ROOT)}:{call.lineno}"
            topic = _string(call.args[0]) if call.args else None
            arg = call.args[1] if len(call.args) > 1 else None
            found = [_string(arg)] if _string(arg) is not None else (
                _resolve_parameter(tree, parents, arg) if isinstance(arg, ast.Name) else None)
            if topic is None or not found:
                unreadable.append(where)
            else:
                names[topic].update(found)
    return dict(names), unreadable


DISPATCHED, UNREADABLE = dispatched()


def _rung(rung: str, topic: str):
    return importlib.import_module(f"tinyvision.kernels.{rung}.{topic}")


def _signature(fn) -> str:
    """``(grad, w, x_shape, ...)``: names, kinds and defaults; annotations may differ by rung."""
    sig = inspect.signature(fn)
    params = [p.replace(annotation=inspect.Parameter.empty) for p in sig.parameters.values()]
    return str(sig.replace(parameters=params, return_annotation=inspect.Signature.empty))


def test_the_scan_finds_the_ladders_and_reads_every_call():
    """Every dispatch call names its topic and kernel by strings the test can read (so that a
    rung can be checked without running it), and the scan does find the known ladders."""
    assert not UNREADABLE, f"kernel(...) calls whose topic or name is not a string literal: {UNREADABLE}"
    assert {"conv", "pooling", "attention"} <= set(DISPATCHED)
    assert {"conv2d_forward", "im2col"} <= DISPATCHED["conv"]
    assert {"max_pool2d_forward", "adaptive_max_pool2d_forward"} <= DISPATCHED["pooling"]  # via ArgMaxPool.apply


@pytest.mark.parametrize("topic", sorted(DISPATCHED))
def test_every_rung_defines_every_dispatched_kernel_with_one_signature(topic):
    rungs = {rung: _rung(rung, topic) for rung in dispatch.RUNGS}
    for name in sorted(DISPATCHED[topic]):
        missing = [r for r, module in rungs.items() if not callable(getattr(module, name, None))]
        assert not missing, f"kernels/{{{','.join(missing)}}}/{topic}.py lacks {name}(), which the library dispatches"
        signatures = {r: _signature(getattr(module, name)) for r, module in rungs.items()}
        assert len(set(signatures.values())) == 1, f"{topic}.{name}: signatures differ: {signatures}"


@pytest.mark.parametrize("topic", sorted(DISPATCHED))
def test_each_rung_declares_exactly_the_dispatched_ladder(topic):
    """``__all__``, where a rung declares it, names exactly the functions the library reaches:
    no rung carries a ladder entry nobody calls, and every rung agrees."""
    for rung in dispatch.RUNGS:
        declared = getattr(_rung(rung, topic), "__all__", None)
        if declared is not None:
            assert sorted(declared) == sorted(DISPATCHED[topic]), (
                f"kernels/{rung}/{topic}.py: __all__ {sorted(declared)} != dispatched {sorted(DISPATCHED[topic])}")


def test_dispatch_reaches_modules_by_the_rung_names_this_test_covers():
    """The test's rung list is the dispatch's, and kernel() resolves a name to that rung's
    function (here the forced reference rung and the default CPU rung on a NumPy array)."""
    import numpy as np

    assert dispatch.RUNGS == ("reference", "cpu", "gpu")
    x = np.zeros(1)
    assert dispatch.kernel("conv", "im2col", x) is _rung("cpu", "conv").im2col
    with dispatch.use("reference"):
        assert dispatch.kernel("conv", "im2col", x) is _rung("reference", "conv").im2col
