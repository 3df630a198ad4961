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
