"""The layer-norm ladder: the Numba rung against the NumPy reference (and the reference against
torch: tests/test_normalization.py compares F.layer_norm, which runs the rungs, with torch)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from tinyvision.kernels.cpu import normalization as cpu
from tinyvision.kernels.reference import normalization as ref


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 40), cols=st.integers(1, 40), affine=st.sampled_from(["both", "weight", "none"]),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 10_000))
def test_numba_rung_equals_the_reference(rows, cols, affine, dtype, seed) -> None:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, cols)) * 3 + 1).astype(dtype)
    grad = rng.standard_normal((rows, cols)).astype(dtype)
    w = rng.standard_normal(cols).astype(dtype) if affine != "none" else None
    b = rng.standard_normal(cols).astype(dtype) if affine == "both" else None
    tol = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}[dtype]
    got, want = cpu.layer_norm_forward(x, w, b, 1e-5), ref.layer_norm_forward(x, w, b, 1e-5)
    for a, e in zip(got, want):
        np.testing.assert_allclose(a, e, **tol)
    assert got[0].dtype == dtype
    for a, e in zip(cpu.layer_norm_backward(grad, x, w, *got[1:]), ref.layer_norm_backward(grad, x, w, *want[1:])):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, e, **tol)


@pytest.mark.parametrize("rung", [ref, cpu])
def test_each_rung_matches_torch_in_float64(rung) -> None:
    rng = np.random.default_rng(0)
    x, w, b, g = (rng.standard_normal(s) for s in ((6, 10), (10,), (10,), (6, 10)))
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = torch.nn.functional.layer_norm(xt, (10,), wt, bt, eps=1e-5)
    yt.backward(torch.tensor(g))
    y, mean, rstd = rung.layer_norm_forward(x, w, b, 1e-5)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    for ours, theirs in zip(rung.layer_norm_backward(g, x, w, mean, rstd), (xt.grad, wt.grad, bt.grad)):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-11, atol=1e-12)
