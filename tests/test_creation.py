"""Making tensors (tinyvision/creation.py, tinyvision/random.py): values and dtypes as PyTorch
makes them, seeded draws that repeat, and clear errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tinyvision as tv


def same(ours: tv.Tensor, theirs: torch.Tensor) -> None:
    assert ours.shape == tuple(theirs.shape)
    assert str(ours.dtype) == str(theirs.dtype).removeprefix("torch.")
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)


@pytest.mark.parametrize("name, args, kwargs", [
    ("zeros", (2, 3), {}),
    ("zeros", ((2, 3),), {}),
    ("ones", (0, 2), {}),
    ("ones", (4,), {"dtype": "float64"}),
    ("full", ((2, 2), 1.5), {}),
    ("full", ((2,), 7), {}),
    ("full", ((2,), True), {}),
    ("eye", (3,), {}),
    ("eye", (2, 3), {}),
    ("arange", (5,), {}),
    ("arange", (1, 7, 2), {}),
    ("arange", (0.0, 1.0, 0.25), {}),
    ("arange", (3,), {"dtype": "float64"}),
    ("linspace", (0.0, 1.0, 5), {}),
])
def test_deterministic_makers_match_torch(name, args, kwargs):
    tkw = {k: getattr(torch, v) for k, v in kwargs.items()}
    same(getattr(tv, name)(*args, **kwargs), getattr(torch, name)(*args, **tkw))


def test_tensor_copies_and_from_numpy_shares():
    a = np.arange(3.0)
    t, f = tv.tensor(a), tv.from_numpy(a)
    a[0] = 9.0
    assert t.tolist() == [0.0, 1.0, 2.0] and f.tolist() == [9.0, 1.0, 2.0]


def test_like_makers_keep_shape_and_dtype():
    x = tv.ones(2, 3, dtype=tv.float64)
    for made in (tv.zeros_like(x), tv.ones_like(x), tv.empty_like(x), tv.full_like(x, 2.0),
                 tv.rand_like(x), tv.randn_like(x)):
        assert made.shape == (2, 3) and made.dtype == np.float64
    assert tv.full_like(x, 2.0).tolist() == [[2.0] * 3] * 2


def test_requires_grad_on_makers():
    assert tv.zeros(2, requires_grad=True).requires_grad
    assert tv.randn(2, requires_grad=True).is_leaf


def test_manual_seed_repeats_every_draw():
    def draws():
        return [tv.rand(3).numpy(), tv.randn(2, 2).numpy(), tv.randint(0, 5, (4,)).numpy(), tv.randperm(5).numpy()]

    tv.manual_seed(7)
    first = draws()
    tv.manual_seed(7)
    for a, b in zip(first, draws()):
        np.testing.assert_array_equal(a, b)
    tv.manual_seed(8)
    assert not np.array_equal(first[1], draws()[1])


def test_random_draws_have_the_right_range_and_dtype():
    tv.manual_seed(0)
    u, n = tv.rand(2000), tv.randn(2000, dtype=tv.float64)
    assert u.dtype == np.float32 and 0 <= u.numpy().min() and u.numpy().max() < 1
    assert n.dtype == np.float64 and abs(n.numpy().mean()) < 0.1 and abs(n.numpy().std() - 1) < 0.1
    r = tv.randint(-2, 3, (500,))
    assert r.dtype == np.int64 and set(r.tolist()) == {-2, -1, 0, 1, 2}
    assert set(tv.randint(3, (2, 100)).tolist()[0]) == {0, 1, 2}  # randint(high, size)
    assert sorted(tv.randperm(6).tolist()) == list(range(6))


def test_rng_state_round_trip():
    tv.manual_seed(3)
    state = tv.random.get_rng_state()
    a = tv.randn(3).numpy()
    tv.random.set_rng_state(state)
    np.testing.assert_array_equal(a, tv.randn(3).numpy())


@pytest.mark.parametrize("call, match", [
    (lambda: tv.zeros(2, -1), r"size must be non-negative, got \(2, -1\)"),
    (lambda: tv.tensor([object()]), r"cannot make a tensor from list"),
    (lambda: tv.zeros(2, device="tpu"), r"device must be one of \('cpu', 'cuda'\), got 'tpu'"),
])
def test_bad_input_is_named(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
