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


# ------------------------------------------------------------------ sampling
@pytest.mark.parametrize("replacement", [True, False])
def test_multinomial_frequencies_match_pytorchs(replacement):
    """Same weights, many draws: the frequency of each category (and, without replacement,
    of each category as the first and second pick) agrees with PyTorch's within sampling noise."""
    weights = np.array([[0.1, 0.0, 3.0, 1.0, 0.9], [2.0, 2.0, 0.0, 0.0, 1.0]])
    tv.manual_seed(0)
    torch.manual_seed(0)
    draws = 4000
    ours = tv.multinomial(tv.tensor(weights).repeat(draws // 2, 1), 2, replacement).numpy()
    theirs = torch.multinomial(torch.tensor(weights).repeat(draws // 2, 1), 2, replacement).numpy()
    assert ours.shape == theirs.shape == (draws, 2) and ours.dtype == np.int64
    for pick in (0, 1):
        for row in (0, 1):
            f_ours = np.bincount(ours[row::2, pick], minlength=5) / (draws // 2)
            f_theirs = np.bincount(theirs[row::2, pick], minlength=5) / (draws // 2)
            np.testing.assert_allclose(f_ours, f_theirs, atol=0.05)
            assert f_ours[weights[row] == 0].sum() == 0  # a zero weight is never drawn
    if not replacement:
        assert (ours[:, 0] != ours[:, 1]).all()


def test_multinomial_and_bernoulli_are_seeded():
    runs = []
    for _ in range(2):
        tv.manual_seed(7)
        p = tv.full((1000,), 0.3)
        runs.append((tv.multinomial(tv.tensor([1.0, 2.0, 3.0]), 5, True).numpy(), tv.bernoulli(p).numpy(),
                     p.bernoulli(0.9).numpy()))
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    _, b03, b09 = runs[0]
    assert b03.dtype == np.float32 and set(np.unique(b03)) == {0.0, 1.0}
    assert abs(b03.mean() - 0.3) < 0.05 and abs(b09.mean() - 0.9) < 0.05


MULTINOMIAL_BAD = [
    (lambda: tv.multinomial(tv.tensor([1.0, -1.0]), 1), "contains either inf, nan or element < 0"),
    (lambda: tv.multinomial(tv.tensor([0.0, 0.0]), 1), r"sum of probabilities <= 0"),
    (lambda: tv.multinomial(tv.tensor([1.0, 0.0, 2.0]), 3), "cannot sample 3 samples without replacement from a row with 2 nonzero weights"),
    (lambda: tv.multinomial(tv.ones(2, 2, 2), 1), r"input must be 1-D or 2-D, got shape \(2, 2, 2\)"),
    (lambda: tv.bernoulli(tv.tensor([0.5, 1.5])), r"probabilities must lie in \[0, 1\], got min 0.5, max 1.5"),
]


@pytest.mark.parametrize("call, message", MULTINOMIAL_BAD)
def test_sampling_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()
