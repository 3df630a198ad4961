"""Tensor (tinyvision/autograd/tensor.py): dtypes, requires_grad rules, backward()'s
arguments, conversions and the in-place guard. Values are compared with PyTorch's."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tinyvision as tv


# ------------------------------------------------------------------ dtypes
@pytest.mark.parametrize("data", [1.0, [1.0, 2.0], [[1, 2]], 3, True, [True, False], [1, 2.5]])
def test_dtype_of_python_data_matches_torch(data):
    """Python floats become float32 (the default), ints int64, bools bool, as in PyTorch."""
    assert str(tv.tensor(data).dtype) == str(torch.tensor(data).dtype).removeprefix("torch.")


def test_float64_on_request_and_default_dtype():
    assert tv.tensor([1.0], dtype=tv.float64).dtype == np.float64
    assert tv.zeros(2, dtype=tv.float64).dtype == np.float64
    assert tv.tensor(np.zeros(2)).dtype == np.float64  # a NumPy array keeps its dtype
    tv.set_default_dtype(tv.float64)
    try:
        assert tv.tensor([1.0]).dtype == np.float64 and tv.randn(2).dtype == np.float64
    finally:
        tv.set_default_dtype(tv.float32)
    assert tv.ones(2).dtype == np.float32
    with pytest.raises(TypeError, match="floating type, got int64"):
        tv.set_default_dtype(np.int64)


def test_int_and_bool_tensors_compute_without_a_graph():
    i = tv.tensor([1, 2, 3])
    b = i > 1
    assert (i + 1).dtype == np.int64 and (i * 2).tolist() == [2, 4, 6]
    assert b.dtype == np.bool_ and b.tolist() == [False, True, True]
    assert (i + 1).grad_fn is None and not b.requires_grad
    x = tv.ones(3, requires_grad=True)
    y = x * i  # an int tensor in a float graph gets no gradient, the float one does
    y.sum().backward()
    assert x.grad.tolist() == [1.0, 2.0, 3.0] and i.grad is None


@pytest.mark.parametrize("make", [
    lambda: tv.tensor([1, 2], requires_grad=True),
    lambda: tv.tensor([True], requires_grad=True),
    lambda: tv.tensor([1, 2]).requires_grad_(),
    lambda: setattr(tv.arange(3), "requires_grad", True),
])
def test_integer_tensor_cannot_require_grad(make):
    with pytest.raises(RuntimeError, match="only floating point tensors can require gradients, got dtype (int64|bool)"):
        make()


def test_requires_grad_cannot_be_switched_off_on_a_non_leaf():
    y = tv.ones(2, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="use .detach"):
        y.requires_grad = False


# ------------------------------------------------------------------ backward()'s arguments
def test_backward_on_non_scalar_needs_a_gradient():
    y = tv.ones(2, 3, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match=r"only for scalar outputs.*shape \(2, 3\)"):
        y.backward()


def test_backward_refuses_a_gradient_of_the_wrong_shape():
    y = tv.ones(2, 3, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match=r"gradient has shape \(3, 2\) but the tensor has shape \(2, 3\)"):
        y.backward(tv.ones(3, 2))


def test_backward_with_a_gradient_matches_torch():
    g = np.arange(6.0).reshape(2, 3)
    x, t = tv.ones(2, 3, requires_grad=True), torch.ones(2, 3, requires_grad=True)
    (x.exp() * 2).backward(tv.tensor(g))
    (t.exp() * 2).backward(torch.tensor(g, dtype=torch.float32))
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-6)


def test_backward_on_a_tensor_without_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        tv.ones(2).sum().backward()


def test_backward_on_a_leaf_fills_its_own_grad():
    x = tv.ones(2, requires_grad=True)
    x.backward(tv.tensor([2.0, 3.0]))
    assert x.grad.tolist() == [2.0, 3.0]


# ------------------------------------------------------------------ conversions
@pytest.mark.parametrize("convert", ["double", "to"])
def test_dtype_conversion_is_differentiable(convert):
    """float32 -> float64 -> ops -> backward: the gradient arrives as float32, equal to torch's."""
    v = np.array([0.3, -1.2, 2.0], dtype=np.float32)
    x, t = tv.tensor(v, requires_grad=True), torch.tensor(v, requires_grad=True)
    xd = x.double() if convert == "double" else x.to(tv.float64)
    assert xd.dtype == np.float64 and xd.grad_fn is not None
    (xd.sin() * xd).sum().backward()
    (t.double().sin() * t.double()).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-6)


def test_cast_to_int_or_bool_leaves_the_graph():
    """x.long() of a tensor in a graph is a plain int tensor (not differentiable), as in torch."""
    x = tv.tensor([1.7, -2.2], requires_grad=True) * 2
    t = torch.tensor([1.7, -2.2], requires_grad=True) * 2
    for ours, theirs in ((x.long(), t.long()), (x.int(), t.int()), (x.bool(), t.bool())):
        assert ours.tolist() == theirs.tolist()
        assert not ours.requires_grad and ours.grad_fn is None and not theirs.requires_grad


def test_numpy_refuses_a_tensor_that_requires_grad():
    x = tv.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"requires grad; use .detach\(\).numpy\(\)"):
        x.numpy()
    assert x.detach().numpy().tolist() == [1.0, 1.0]


def test_item_len_iter_and_repr():
    x = tv.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    assert len(x) == 2 and [r.shape for r in x] == [(2,), (2,)]
    assert x.sum().item() == 10.0
    assert "grad_fn=<SumBackward>" in repr(x.sum()) and "requires_grad=True" in repr(x)
    with pytest.raises(ValueError, match=r"only one-element tensors.*\(2, 2\)"):
        x.item()


# ------------------------------------------------------------------ in place
@pytest.mark.parametrize("change", [
    lambda x: x.__setitem__(0, 5.0),
    lambda x: x.copy_(tv.zeros(3)),
    lambda x: x.fill_(1.0),
    lambda x: x.zero_(),
])
def test_in_place_on_requires_grad_tensor_only_under_no_grad(change):
    x = tv.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place operation"):
        change(x)
    with tv.no_grad():
        change(x)  # e.g. an optimizer update
    change(tv.ones(3))  # a tensor outside any graph may always change


IN_PLACE = {  # name -> call, the same on both libraries
    "add_": lambda x, lib: x.add_(lib.ones(3, dtype=x.dtype), alpha=2),
    "sub_": lambda x, lib: x.sub_(0.5, alpha=3),
    "mul_": lambda x, lib: x.mul_(3),
    "div_": lambda x, lib: x.div_(lib.full((2, 3), 4.0, dtype=x.dtype)),
    "pow_": lambda x, lib: x.pow_(2),
    "clamp_": lambda x, lib: x.clamp_(-0.5, 0.5),
    "abs_": lambda x, lib: x.abs_(),
    "neg_": lambda x, lib: x.neg_(),
    "exp_": lambda x, lib: x.exp_(),
    "sigmoid_": lambda x, lib: x.sigmoid_(),
    "relu_": lambda x, lib: x.relu_(),
    "zero_": lambda x, lib: x.zero_(),
    "fill_": lambda x, lib: x.fill_(2.5),
    "copy_": lambda x, lib: x.copy_(lib.ones(3, dtype=x.dtype)),
    "masked_fill_": lambda x, lib: x.masked_fill_(x > 0, -1.0),
}


@pytest.mark.parametrize("name", IN_PLACE)
def test_in_place_ops_on_a_leaf_under_no_grad_match_pytorch(name):
    values = np.random.default_rng(0).standard_normal((2, 3))
    results = []
    for lib in (tv, torch):
        x = lib.tensor(values, requires_grad=True)
        with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place operation"):
            IN_PLACE[name](x, lib)
        with lib.no_grad():
            assert IN_PLACE[name](x, lib) is x
        assert x._version == 1 and x.grad_fn is None
        results.append(x.detach().numpy())
    np.testing.assert_allclose(*results, rtol=1e-12)


def test_uniform_normal_bernoulli_fill_in_place_from_the_seeded_generator():
    draws = []
    for _ in range(2):
        tv.manual_seed(3)
        draws.append([tv.empty(2000).uniform_(-2, 3).numpy(), tv.empty(2000).normal_(1, 2).numpy(),
                      tv.empty(2000).bernoulli_(0.25).numpy()])
    for a, b in zip(*draws):
        np.testing.assert_array_equal(a, b)
    u, n, b = draws[0]
    assert -2 <= u.min() and u.max() < 3 and abs(u.mean() - 0.5) < 0.15
    assert abs(n.mean() - 1) < 0.15 and abs(n.std() - 2) < 0.15
    assert set(np.unique(b)) == {0.0, 1.0} and abs(b.mean() - 0.25) < 0.05


def test_new_tensors_take_dtype_and_device_and_sizes_like_pytorch():
    for lib in (tv, torch):
        x = lib.ones(2, dtype=lib.float64)
        for made in (x.new_zeros(2, 3), x.new_ones((2, 3)), x.new_empty(2, 3), x.new_full((2, 3), 7.0),
                     x.new_tensor([[1.0, 2.0, 3.0]] * 2)):
            assert tuple(made.shape) == (2, 3) and made.dtype == lib.float64
        assert x.new_zeros(2, dtype=lib.int64).dtype == lib.int64
        assert x.element_size() == 8 and x.nbytes == 16 and x.new_ones(3).sum().item() == 3
        assert lib.ones(4, dtype=lib.float32).element_size() == 4


def test_to_device_op_copies_and_sends_the_gradient_back() -> None:
    """The ToDevice Function itself (Tensor.to skips it when the device already matches)."""
    x = tv.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    y = tv.functional.to_device(x, "cpu")
    assert y.device == "cpu" and y.grad_fn is not None
    (y * 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 3), 2.0))
