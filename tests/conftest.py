"""Shared pytest setup: Hypothesis profile and the GPU skip reason."""
import os

import pytest
from hypothesis import HealthCheck, settings

from tinyvision.kernels.compat import gpu_available, gpu_unavailable_reason

# Small, deterministic example counts keep the suite within minutes on 2 cores.
settings.register_profile("tinyvision", max_examples=25, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "tinyvision"))

requires_gpu = pytest.mark.skipif(not gpu_available(), reason=f"GPU tests skipped: {gpu_unavailable_reason()}")
