"""The GELU/erf ladder: the Numba rung against the NumPy reference (and SciPy's exact erf)."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.special
from hypothesis import given, settings, strategies as st

from tinyvision.kernels.cpu import activation as cpu
from tinyvision.kernels.reference import activation as ref


def sample(n: int, dtype, seed: int = 0) -> np.ndarray:
    """Normal values spread to +-8 (past the rational fit's clamp at 4), plus the edge cases."""
    x = np.random.default_rng(seed).standard_normal(n) * 3
    return np.concatenate([x, [0.0, -0.0, 4.0, -4.0, 3.999, 9.0, -9.0, 1e-30]]).astype(dtype)


def test_the_rational_erf_is_within_1e7_of_the_exact_one() -> None:
    x = np.linspace(-8, 8, 200001).astype(np.float32)
    exact = scipy.special.erf(x.astype(np.float64))
    assert np.abs(ref.erf_rational(x) - exact).max() < 1e-7
    assert np.array_equal(cpu.erf(x), ref.erf_rational(x))  # the Numba rung is that formula
    assert cpu.erf(np.float32([0.0]))[0] == 0 and np.all(np.abs(cpu.erf(x)) <= 1)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 300), st.integers(0, 10_000))
def test_float64_rung_equals_the_reference(n: int, seed: int) -> None:
    x = sample(n, np.float64, seed)
    g = np.random.default_rng(seed + 1).standard_normal(x.shape)
    np.testing.assert_allclose(cpu.erf(x), ref.erf(x), rtol=1e-15, atol=1e-16)
    # atol: for x << 0, 1 + erf(x) cancels, and libm's and SciPy's erf may differ by one ulp (1e-16)
    np.testing.assert_allclose(cpu.gelu_forward(x), ref.gelu_forward(x), rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(cpu.gelu_backward(x, g), ref.gelu_backward(x, g), rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("shape", [(7,), (3, 5, 11), (2, 0, 4)])
def test_float32_rung_within_float32_rounding_of_the_exact_values(shape) -> None:
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    for got, want in [(cpu.gelu_forward(x), ref.gelu_forward(x64)), (cpu.gelu_backward(x, g), ref.gelu_backward(x64, g64))]:
        assert got.dtype == np.float32 and got.shape == shape
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6)


def test_non_contiguous_input_and_float16_fall_back() -> None:
    x = np.random.default_rng(2).standard_normal((6, 8))[:, ::2]
    np.testing.assert_allclose(cpu.gelu_forward(x), ref.gelu_forward(x), rtol=1e-14)
    h = x.astype(np.float16)
    assert cpu.gelu_forward(h).dtype == np.float16
    np.testing.assert_allclose(cpu.gelu_forward(h), ref.gelu_forward(h))
