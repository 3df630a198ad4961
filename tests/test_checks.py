"""`tinyvision gradcheck` (tinyvision/checks.py): every case passes, and a wrong backward fails."""
from __future__ import annotations

import numpy as np

import tinyvision as tv
from tinyvision.autograd.function import Function
from tinyvision.checks import _cases, run_gradchecks


class WrongSquare(Function):
    """x^2 with the gradient off by a factor of 2 (x instead of 2x): the check must catch it."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * x


def test_every_case_passes(capsys) -> None:
    assert run_gradchecks() == []
    out = capsys.readouterr().out
    assert f"{len(_cases())} passed, 0 failed" in out


def test_every_case_checks_float64_inputs_that_all_matter() -> None:
    """Each case depends on every input it is given (else its gradient check would be empty)."""
    rng = np.random.default_rng(1)
    for name, fn, shapes in _cases():
        inputs = [tv.tensor(rng.standard_normal(s) + 0.5, requires_grad=True) for s in shapes]
        out = fn(*inputs)
        (out[0] if isinstance(out, tuple) else out).sum().backward()
        for i, x in enumerate(inputs):
            assert x.grad is not None and np.any(x.grad.numpy() != 0), f"{name}: input {i} gets no gradient"


def test_a_wrong_gradient_fails_and_an_exception_is_reported(capsys) -> None:
    cases = [("right square", lambda x: x * x, [(3,)]),
             ("wrong square", lambda x: WrongSquare.apply(x), [(3,)]),
             ("raises", lambda x: x.reshape(7), [(3,)])]
    assert run_gradchecks(cases=cases) == ["wrong square", "raises"]
    out = capsys.readouterr().out
    assert "1 passed, 2 failed" in out
    assert "wrong square" in out and "FAILED: gradcheck failed" in out
    assert "ERROR: ValueError" in out or "ERROR: RuntimeError" in out
