"""kernels/cpu/blas.py: GEMMs split by rows over Numba's threads, against NumPy's matmul
(float32 and float64, fewer rows than threads, layouts that must fall back), and the BLAS
thread limit that is lifted again after a kernel."""
from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from tinyvision.kernels.cpu import blas
from tests.helpers import DTYPES, tol


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", [1, 2, 37])
def test_row_split_gemms_match_numpy(dtype, m):
    rng = np.random.default_rng(m)
    a, b, g = (rng.standard_normal(s).astype(dtype) for s in ((m, 9), (9, 5), (m, 5)))
    np.testing.assert_allclose(blas.matmul(a, b), a @ b, **tol(dtype, 10))
    np.testing.assert_allclose(blas.matmul(g, b.T), g @ b.T, **tol(dtype, 10))   # F-contiguous b
    np.testing.assert_allclose(blas.matmul_tn(a, g), a.T @ g, **tol(dtype, 10))   # rows are the reduction
    out = np.empty((m, 5), dtype)
    assert blas.matmul(a, b, out=out) is out


def test_non_contiguous_falls_back_to_numpy():
    rng = np.random.default_rng(0)
    a, b, g = rng.standard_normal((10, 8))[:, ::2], rng.standard_normal((4, 3)), rng.standard_normal((10, 6))[:, ::2]
    np.testing.assert_allclose(blas.matmul(a, b), a @ b, **tol(np.float64))
    np.testing.assert_allclose(blas.matmul_tn(a, g), a.T @ g, **tol(np.float64))


def test_blas_threads_are_given_back():
    before = {i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}
    a = np.ones((64, 16), np.float32)
    blas.matmul(a, np.ones((16, 8), np.float32))
    after = {i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}
    assert all(after[k] == v for k, v in before.items())
