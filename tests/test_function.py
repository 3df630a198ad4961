"""The engine (tinyvision/autograd/function.py): recording, the backward walk, no_grad,
freeing the graph, sum_to and writing one's own Function.

Gradients are compared with PyTorch running the same expression on the same numbers.
"""
from __future__ import annotations

import gc
import tracemalloc
import weakref

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
from hypothesis import given

import tinyvision as tv
from tinyvision.autograd import Function, sum_to

A = np.array([[0.5, -1.5, 2.0], [1.0, 0.25, -0.75]])


def pair(array: np.ndarray = A):
    """The same float64 leaf in tinyvision and in torch."""
    return (tv.tensor(array, dtype=np.float64, requires_grad=True),
            torch.tensor(array, dtype=torch.float64, requires_grad=True))


def assert_grad(ours: tv.Tensor, theirs: torch.Tensor) -> None:
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------ graph shapes
def test_gradients_accumulate_across_backward_calls():
    a, t = pair()
    for x in (a, t):
        (x * x).sum().backward()
        (x * 3).sum().backward()  # .grad = 2x + 3, as in PyTorch
    assert_grad(a, t)


def test_shared_subexpression():
    """b = a + a; c = b * b: a reaches c along two paths and b is used twice."""
    a, t = pair()
    for x in (a, t):
        b = x + x
        (b * b).sum().backward()
    assert_grad(a, t)  # dc/da = 2b * 2 = 8a
    np.testing.assert_allclose(a.grad.numpy(), 8 * A)


def test_diamond():
    """a -> (b = 2a, c = exp(a)) -> d = b * c: the two branches' gradients meet at a."""
    a, t = pair()
    for x in (a, t):
        ((x * 2) * x.exp()).sum().backward()
    assert_grad(a, t)


def test_leaf_used_by_many_ops_and_broadcast():
    a, t = pair()
    w, tw = pair(A[:1])  # (1, 3), broadcast against (2, 3)
    for x, y in ((a, w), (t, tw)):
        ((x * y).tanh() + (x - y) ** 2 / (y * y + 1)).sum().backward()
    assert_grad(a, t)
    assert_grad(w, tw)


@pytest.mark.parametrize("depth", [1000, 5000])
def test_deep_chain_has_no_recursion_limit(depth):
    """The walk is iterative: a chain deeper than Python's recursion limit still works."""
    a, t = pair()
    for x in (a, t):
        h = x
        for _ in range(depth):
            h = h * 1.0001 + 0.0
        h.sum().backward()
    assert_grad(a, t)


# ------------------------------------------------------------------ grad mode
def test_no_grad_context_builds_no_graph():
    a, _ = pair()
    with tv.no_grad():
        b = a * 2
        assert not tv.is_grad_enabled()
    assert tv.is_grad_enabled()
    assert b.grad_fn is None and not b.requires_grad
    assert (a * 2).grad_fn is not None


def test_no_grad_decorator_restores_the_mode_even_when_nested():
    a, _ = pair()

    @tv.no_grad()
    def f(n: int):
        out = f(n - 1) if n else a * 2
        assert not tv.is_grad_enabled()
        return out

    assert f(3).grad_fn is None
    assert tv.is_grad_enabled()  # each exit restored what its own enter saw


def test_enable_grad_inside_no_grad():
    a, _ = pair()
    with tv.no_grad():
        with tv.enable_grad():
            assert (a * 2).grad_fn is not None
        assert (a * 2).grad_fn is None


def test_no_grad_is_restored_after_an_exception():
    with pytest.raises(ZeroDivisionError):
        with tv.no_grad():
            1 / 0
    assert tv.is_grad_enabled()


def test_detach_cuts_the_graph_but_shares_data():
    a, t = pair()
    for x in (a, t):
        (x * x.detach()).sum().backward()  # the detached factor is a constant
    assert_grad(a, t)
    d = a.detach()
    assert d.grad_fn is None and not d.requires_grad and d.data is a.data


# ------------------------------------------------------------------ retain_graph, retain_grad
def test_retain_graph_allows_a_second_backward():
    a, t = pair()
    for x in (a, t):
        y = (x.exp() * x).sum()
        y.backward(retain_graph=True)
        y.backward()
    assert_grad(a, t)


def test_second_backward_without_retain_graph_is_refused():
    a, _ = pair()
    y = (a.exp() * a).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time.*retain_graph=True"):
        y.backward()


def test_retain_grad_on_non_leaves():
    a, t = pair()
    kept = []
    for x in (a, t):
        b = x * 3
        c = b.sin() + b  # b feeds two ops: its .grad is the sum of both shares
        out = c.sum()
        for v in (b, c, out):
            v.retain_grad()
        out.backward()
        kept.append((b, c, out))
    for ours, theirs in zip(*kept):
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-12)
    assert kept[0][0].grad_fn is not None  # still a non-leaf


def test_non_leaf_without_retain_grad_keeps_no_grad():
    a, _ = pair()
    b = a * 2
    b.sum().backward()
    assert b.grad is None


# ------------------------------------------------------------------ freeing the graph
def test_graph_is_freed_after_backward():
    """After backward() the loss no longer holds its intermediates (their saved arrays go)."""
    a, _ = pair()

    def build():
        h = a.exp()
        return weakref.ref(h), weakref.ref(h.data), (h * h).sum()

    h_ref, data_ref, loss = build()
    gc.collect()
    assert h_ref() is not None  # alive: the graph still holds it (this test can fail)
    loss.backward()
    gc.collect()
    assert h_ref() is None and data_ref() is None


def test_training_loop_memory_does_not_grow():
    """1,000 steps of a small MLP: traced memory after step 1,000 is what it was after 100."""
    rng = np.random.default_rng(0)
    x = tv.tensor(rng.standard_normal((16, 8)))
    y = tv.tensor(rng.integers(0, 3, 16))
    w1 = tv.tensor(rng.standard_normal((8, 16)) * 0.3, requires_grad=True)
    w2 = tv.tensor(rng.standard_normal((16, 3)) * 0.3, requires_grad=True)

    def step():
        loss = tv.cross_entropy((x @ w1).relu() @ w2, y)
        loss.backward()
        for w in (w1, w2):  # plain SGD on the raw arrays
            w.data -= 0.01 * w.grad.data
            w.grad = None

    tracemalloc.start()
    try:
        for _ in range(100):
            step()
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(900):
            step()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after - before < 64 * 1024, f"memory grew by {after - before} bytes over 900 steps"


# ------------------------------------------------------------------ sum_to and own Functions
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=4, min_side=0, max_side=3))
def test_sum_to_is_the_gradient_of_broadcasting(shapes):
    """sum_to(g, s) must equal torch's gradient of x.expand(...) for x of shape s."""
    (s, _), out = shapes.input_shapes, shapes.result_shape
    g = np.random.default_rng(0).standard_normal(out)
    x = torch.zeros(s, dtype=torch.float64, requires_grad=True)
    x.expand(out).backward(torch.tensor(g))
    np.testing.assert_allclose(sum_to(g, s), x.grad.numpy(), rtol=1e-12, atol=1e-14)


class Cube(Function):
    """A user-written op: y = x^3, dy/dx = 3x^2; the exponent is a plain Python argument."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.save_for_backward(x)
        ctx.scale = scale
        return scale * x ** 3

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * ctx.scale * 3 * x ** 2, None  # None: `scale` is not a tensor


def test_own_function_matches_torch_and_gradcheck():
    a, t = pair()
    (Cube.apply(a, 0.5) * a).sum().backward()
    (0.5 * t ** 3 * t).sum().backward()
    assert_grad(a, t)
    assert tv.gradcheck(lambda x: Cube.apply(x, 0.5), [tv.tensor(A, requires_grad=True, dtype=np.float64)])


def test_needs_input_grad_and_gradient_dtype():
    """needs_input_grad says which inputs want a gradient; a float64 gradient returned for
    a float32 input is cast back to float32 by the engine."""
    seen = {}

    class Probe(Function):
        @staticmethod
        def forward(ctx, x, y):
            seen["needs"] = ctx.needs_input_grad
            return x * y

        @staticmethod
        def backward(ctx, grad):
            return grad.astype(np.float64), grad.astype(np.float64)

    x = tv.ones(2, requires_grad=True)
    Probe.apply(x, tv.ones(2)).sum().backward()
    assert seen["needs"] == (True, False)
    assert x.grad.dtype == np.float32


def test_wrong_number_of_gradients_is_named():
    class TwoForOne(Function):
        @staticmethod
        def forward(ctx, x):
            return x

        @staticmethod
        def backward(ctx, grad):
            return grad, grad

    with pytest.raises(RuntimeError, match="TwoForOne.backward returned 2 gradients for 1 inputs"):
        TwoForOne.apply(tv.ones(2, requires_grad=True)).sum().backward()


# ------------------------------------------------------------------ in place: version counter
# Each case: (make the graph, change something it saved in place). PyTorch raises the same
# "modified by an inplace operation" error at backward for every one of them.
SAVED_THEN_CHANGED = {
    "saved input": lambda lib, x: ((x * 1).exp() * (y := x * 2), lambda: y.add_(1)),
    "saved output": lambda lib, x: ((y := (x * 1).exp()), lambda: y.mul_(2)),
    "view of saved input": lambda lib, x: ((y := x * 2) * y, lambda: y.view(-1).add_(1)),
    "base of saved view": lambda lib, x: ((y := x * 2)[0] * y[0], lambda: y.add_(1)),
    "setitem on saved input": lambda lib, x: ((y := x * 2) * y, lambda: y.__setitem__(0, 5.0)),
    "detached saved input": lambda lib, x: ((y := x * 2) * y, lambda: y.detach().zero_()),
}


@pytest.mark.parametrize("case", SAVED_THEN_CHANGED)
def test_in_place_change_of_a_saved_array_is_refused_at_backward(case):
    for lib in (tv, torch):
        x = lib.ones(2, 3, dtype=lib.float64, requires_grad=True)
        out, change = SAVED_THEN_CHANGED[case](lib, x)
        change()
        with pytest.raises(RuntimeError, match="modified by an inplace operation.*is at version 1; expected version 0"):
            out.sum().backward()


def test_version_counts_in_place_changes_and_is_shared_with_views_and_detach():
    y = tv.ones(2, 3) * 1
    v, d = y.view(-1), y.detach()
    y.add_(1)
    v.mul_(2)
    d[0, 0] = 7.0
    assert y._version == v._version == d._version == 3
    assert (y * 1)._version == 0  # a new array, a new counter


def test_in_place_on_a_non_leaf_is_recorded_as_in_pytorch():
    """y.op_() on a non-leaf continues the graph; the gradient flows through every step."""
    ours, theirs = [], []
    for lib, out in ((tv, ours), (torch, theirs)):
        x = lib.tensor([[0.5, -1.5, 2.0], [1.0, -0.2, 0.3]], dtype=lib.float64, requires_grad=True)
        w = lib.tensor([1.5, -2.0, 0.5], dtype=lib.float64, requires_grad=True)
        y = x * 2
        y.mul_(w).add_(w, alpha=0.5).sub_(1).div_(3).clamp_(-0.8, 0.8)
        y[1, 1] = w[0] * 3
        y.masked_fill_(y > 2.5, 0.0)
        y.abs_().exp_()
        (y * y).sum().backward()
        out += [y.detach().numpy(), x.grad.numpy(), w.grad.numpy()]
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-10)


def test_in_place_on_a_plain_tensor_with_a_grad_argument_makes_it_part_of_the_graph():
    for lib in (tv, torch):
        w = lib.tensor([1.0, 2.0], dtype=lib.float64, requires_grad=True)
        buf = lib.zeros(2, dtype=lib.float64)
        buf.add_(w * w)
        assert buf.requires_grad and buf.grad_fn is not None
        buf.sum().backward()
        np.testing.assert_array_equal(w.grad.numpy(), [2.0, 4.0])


def test_fill_of_a_non_leaf_sends_zero_gradient_back():
    for lib in (tv, torch):
        x = lib.ones(3, dtype=lib.float64, requires_grad=True)
        y = x * 2
        y.fill_(4.0)
        y.sum().backward()
        np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 0.0])


def test_in_place_shape_and_dtype_errors_name_both():
    with pytest.raises(RuntimeError, match=r"add_: output with shape \[3\] doesn't match the broadcast shape \[2, 3\]"):
        tv.zeros(3).add_(tv.ones(2, 3))
    with pytest.raises(RuntimeError, match="mul_: result type float(32|64) can.t be cast to the desired output type int64"):
        tv.arange(3).mul_(tv.ones(3))


# ------------------------------------------------------------------ hooks
def test_register_hook_sees_and_replaces_gradients_like_pytorch():
    grads = {}
    for lib in (tv, torch):
        x = lib.tensor([1.0, -2.0, 3.0], dtype=lib.float64, requires_grad=True)
        y = x * x
        seen = []
        y.register_hook(lambda g: seen.append(g.detach().numpy().copy()))
        handle = y.register_hook(lambda g: g * 10)
        x.register_hook(lambda g: g + 1)  # a leaf's hook sees its whole gradient once
        (y + x * y).sum().backward()
        grads[lib] = (x.grad.numpy(), seen)
        handle.remove()
        x.grad = None
        (x * x).sum().backward()
        np.testing.assert_array_equal(x.grad.numpy(), 2 * x.detach().numpy() + 1)
    np.testing.assert_allclose(grads[tv][0], grads[torch][0], rtol=1e-12)
    np.testing.assert_allclose(grads[tv][1], grads[torch][1], rtol=1e-12)


def test_register_hook_on_a_tensor_without_grad_is_refused():
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        tv.ones(2).register_hook(lambda g: g)


# ------------------------------------------------------------------ imports point one way
def test_autograd_core_imports_only_downwards_and_at_the_top():
    """function.py and tensor.py import, at module level and before their first definition,
    only what sits below them (kernels, NumPy, each other downwards); functional, creation and
    random (built on Tensor) are reached at call time."""
    import ast
    import pathlib

    root = pathlib.Path(tv.__file__).parent / "autograd"
    for name in ("function.py", "tensor.py"):
        body = ast.parse((root / name).read_text()).body
        first_def = next(i for i, n in enumerate(body) if isinstance(n, (ast.ClassDef, ast.FunctionDef)))
        late = [n.lineno for n in body[first_def:] if isinstance(n, (ast.Import, ast.ImportFrom))]
        assert not late, f"{name} has module-level imports after its first definition, lines {late}"
        targets = [n.module for n in body if isinstance(n, ast.ImportFrom)] + \
                  [a.name for n in body if isinstance(n, ast.Import) for a in n.names]
        upward = [t for t in targets if t.startswith("tinyvision") and not t.startswith(("tinyvision.kernels", "tinyvision.autograd.function"))]
        assert not upward, f"{name} imports upwards at module level: {upward}"


def test_backward_after_an_optimizer_step_on_a_saved_weight_is_refused():
    """PyTorch's optimizers change parameters in place, which bumps their version; ours too,
    so a stale graph is refused instead of differentiated at the new weights."""
    for lib in (tv, torch):
        w = lib.nn.Parameter(lib.ones(3, dtype=lib.float64))
        loss = (w * w).sum()
        opt = lib.optim.SGD([w], lr=0.1)
        w.grad = lib.ones(3, dtype=lib.float64)
        opt.step()
        with pytest.raises(RuntimeError, match="modified by an inplace operation.*is at version 1; expected version 0"):
            loss.backward()


# ------------------------------------------------------------------ in place through views
# PyTorch rebases a view and its base onto an in-place change made through the other one.
# tinyvision does not: it must refuse such a tensor, never differentiate its old history.
THROUGH_VIEWS = {
    "view changed, base used": lambda lib, x: ((y := x * 1), y.view(-1).mul_(2), y)[2],
    "base changed, view used": lambda lib, x: ((y := x * 1), (v := y[0]), y.mul_(2), v)[3],
    "plain base of a view that joins the graph": lambda lib, x: (
        (b := lib.zeros(2, 3, dtype=lib.float64)), b[0].add_(x[0] * 3), b)[2],
}


@pytest.mark.parametrize("case", THROUGH_VIEWS)
def test_in_place_through_a_view_is_refused_not_differentiated_wrongly(case):
    x = torch.ones(2, 3, dtype=torch.float64, requires_grad=True)
    (THROUGH_VIEWS[case](torch, x) * 1).sum().backward()
    assert x.grad.abs().sum() > 0  # torch follows the change: its gradient is not x's plain one
    x = tv.ones(2, 3, dtype=tv.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match="changed in place through a view of it .* history is out of date"):
        (THROUGH_VIEWS[case](tv, x) * 1).sum().backward()


def test_views_taken_after_the_change_and_detached_tensors_are_fine():
    for lib in (tv, torch):
        x = lib.ones(2, 3, dtype=lib.float64, requires_grad=True)
        y = x * 1
        d = y.detach()
        y.mul_(3)
        (y[0] * 1 + d[1]).sum().backward()  # y[0] is taken after mul_; d has no history
        np.testing.assert_array_equal(x.grad.numpy(), [[3.0] * 3, [0.0] * 3])
