"""kernels/cpu/fastmath.py: the vectorisable float32 exp of the Numba kernels (softmax, GELU)."""
from __future__ import annotations

import numpy as np

from tinyvision.kernels.cpu.fastmath import _expf


def test_float32_exp_within_2_ulp_on_its_range():
    """Within 2 ulp of the exact value on [-87, 0], 0 below (subnormal results are flushed),
    NaN kept."""
    x = np.concatenate([np.linspace(-87, 0, 20001), -np.geomspace(1e-8, 1, 200)]).astype(np.float32)
    ours = np.array([_expf(v) for v in x])
    np.testing.assert_allclose(ours, np.exp(x.astype(np.float64)), rtol=2.4e-7, atol=0)
    assert _expf(np.float32(-np.inf)) == 0 and _expf(np.float32(-100)) == 0 and _expf(np.float32(0)) == 1
    assert np.isnan(_expf(np.float32(np.nan)))
