"""gradcheck (tinyvision/autograd/gradcheck.py): it passes correct gradients, catches a wrong
one and says where, and refuses float32."""
from __future__ import annotations

import re

import numpy as np
import pytest

import tinyvision as tv
from tinyvision.autograd import Function, GradcheckError


def leaf(*shape: int, seed: int = 0) -> tv.Tensor:
    return tv.tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


class OffByOne(Function):
    """y = 2x, but backward is wrong at one element: (1, 2) gets 3x the gradient, not 2x."""

    @staticmethod
    def forward(ctx, x):
        return 2 * x

    @staticmethod
    def backward(ctx, grad):
        g = 2 * grad
        g[1, 2] = 3 * grad[1, 2]
        return g


def correct(x: tv.Tensor, w: tv.Tensor) -> tv.Tensor:
    return (x @ w).tanh() * x.sum(1, keepdim=True)


@pytest.mark.parametrize("mode", ["full", "random"])
def test_passes_correct_gradients(mode):
    assert tv.gradcheck(correct, [leaf(3, 4), leaf(4, 2, seed=1)], mode=mode)


def test_several_outputs_and_non_tensor_arguments():
    """Every float output counts; plain Python arguments pass through."""
    assert tv.gradcheck(lambda x, k: (x * k, x.exp()), [leaf(2, 3), 3.0])


@pytest.mark.parametrize("which", [0, 1])
def test_names_input_element_and_both_values(which):
    """The message names the wrong input and element, both values and both errors; the values
    check out: abs error = |analytic - numerical|, rel error = abs error / |numerical|."""
    inputs = [leaf(2, 3), leaf(2, 3, seed=1)]
    fn = (lambda a, b: OffByOne.apply(a) * 1 + b) if which == 0 else (lambda a, b: a + OffByOne.apply(b))
    with pytest.raises(GradcheckError) as info:
        tv.gradcheck(fn, inputs)
    msg = str(info.value)
    m = re.search(rf"input {which} \(shape \(2, 3\)\), element \(1, 2\): analytic (\S+), numerical (\S+), "
                  r"abs error (\S+), rel error (\S+)$", msg)
    assert m, msg
    analytic, numerical, abs_err, rel_err = map(float, m.groups())
    assert analytic == pytest.approx(1.5 * numerical, rel=1e-6)  # 3x where 2x was right
    assert abs_err == pytest.approx(abs(analytic - numerical), rel=1e-2)
    assert rel_err == pytest.approx(abs_err / abs(numerical), rel=1e-2)


def test_random_mode_catches_the_wrong_gradient_too():
    with pytest.raises(GradcheckError, match=r"input 0 \(shape \(2, 3\)\), random direction \d+: analytic"):
        tv.gradcheck(OffByOne.apply, [leaf(2, 3)], mode="random")


def test_raise_exception_false_returns_false():
    assert tv.gradcheck(OffByOne.apply, [leaf(2, 3)], raise_exception=False) is False


def test_refuses_float32():
    x = tv.tensor(np.ones((2, 2), dtype=np.float32), requires_grad=True)
    with pytest.raises(TypeError, match=r"input 0 is float32; finite differences need float64"):
        tv.gradcheck(lambda t: t * 2, [x])


def test_refuses_no_input_requiring_grad_and_an_unknown_mode():
    with pytest.raises(ValueError, match="no input requires grad"):
        tv.gradcheck(lambda t: t * 2, [tv.ones(2, dtype=tv.float64)])
    with pytest.raises(ValueError, match="mode must be 'full' or 'random'"):
        tv.gradcheck(lambda t: t * 2, [leaf(2)], mode="exact")


def test_leaves_inputs_unchanged():
    x = leaf(2, 3)
    before = x.data.copy()
    tv.gradcheck(correct, [x, leaf(3, 2, seed=1)])
    np.testing.assert_array_equal(x.data, before)
