"""The CPU rung's three attention algorithms (kernels/cpu/attention.py): batched, heads over
threads, and flash (tiled online softmax, backward by recomputation), each forced with
``use_algorithm`` and compared with the NumPy reference on random shapes (Hypothesis: batch
broadcasting, causal, lengths that straddle the tiles), float32 and float64, forward and
backward; flash also against torch directly, and its memory against the scores' size.
Tolerances: test_attention.py's (10x the elementwise one in float32: softmax sums over S)."""
from __future__ import annotations

import contextlib
import tracemalloc

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyvision.kernels.cpu import attention as cpu
from tinyvision.kernels.dispatch import use_algorithm
from tinyvision.kernels.reference import attention as ref
from tests.boundscheck import run_under_boundscheck
from tests.helpers import DTYPES, tol

SCALE = {np.float32: 10.0, np.float64: 1.0}


@contextlib.contextmanager
def small_tiles():
    """Flash tiles of 4 queries x 8 keys, so that small shapes cross many tile edges."""
    saved = cpu.BLOCK_Q, cpu.BLOCK_K
    cpu.BLOCK_Q, cpu.BLOCK_K = 4, 8
    try:
        yield
    finally:
        cpu.BLOCK_Q, cpu.BLOCK_K = saved


@st.composite
def cases(draw):
    B, H = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    L, S = draw(st.integers(1, 20)), draw(st.integers(1, 20))
    E, Ev = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    kv = draw(st.sampled_from([(B, H), (B, 1), (1, H)]))  # k / v broadcast over batch or heads
    return (B, H, L, E), kv + (S, E), kv + (S, Ev), draw(st.booleans()), draw(st.integers(0, 2**16))


# flash in float64 compiles its own set of Numba kernels (tens of seconds on a fresh clone) for a
# path that only sequences of L*S >= 2048*4096 take: it runs in `make test-slow`; float32 here
ALGORITHM_CASES = [(n, d) for n in ("batched", "heads") for d in DTYPES] + [
    ("flash", np.float32), pytest.param("flash", np.float64, marks=pytest.mark.slow)]


@pytest.mark.parametrize("name, dtype", ALGORITHM_CASES)
@settings(max_examples=15)
@given(case=cases())
def test_algorithm_matches_reference(name, dtype, case):
    qs, ks, vs, causal, seed = case
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal(s).astype(dtype) for s in (qs, ks, vs))
    out, probs = ref.attention_forward(q, k, v, None, 0.7, causal, None)
    grad = rng.standard_normal(out.shape).astype(dtype)
    want = ref.attention_backward(grad, q, k, v, probs, 0.7, None)
    with use_algorithm("attention", name), small_tiles():
        assert cpu.algorithm(qs[-2], ks[-2], None, None) == name
        got_out, state = cpu.attention_forward(q, k, v, None, 0.7, causal, None)
        got = cpu.attention_backward(grad, q, k, v, state, 0.7, None)
    t = tol(dtype, SCALE[dtype])
    assert got_out.dtype == dtype and got_out.shape == out.shape
    np.testing.assert_allclose(got_out, out, **t)
    for i, label in enumerate(["dq", "dk", "dv"]):  # both in the broadcast batch shape (the caller sums)
        assert got[i].shape == want[i].shape, label
        np.testing.assert_allclose(got[i], want[i], **t, err_msg=label)
    if name == "flash":
        assert isinstance(state, cpu.FlashState) and got[3] is None  # no (L, S) array, even for dscores
    else:
        np.testing.assert_allclose(state, probs, **t)
        np.testing.assert_allclose(got[3], want[3], **t, err_msg="dscores")


@pytest.mark.parametrize("causal", [False, True])
def test_flash_matches_torch(causal):
    rng = np.random.default_rng(0)
    q, k, v, g = (rng.standard_normal((2, 3, 300, 16)).astype(np.float32) for _ in range(4))
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    out_t = TF.scaled_dot_product_attention(tq, tk, tv, is_causal=causal)
    out_t.backward(torch.tensor(g))
    with use_algorithm("attention", "flash"):
        out, state = cpu.attention_forward(q, k, v, None, 0.25, causal, None)
        dq, dk, dv, _ = cpu.attention_backward(g, q, k, v, state, 0.25, None)
    t = tol(np.float32, SCALE[np.float32])
    np.testing.assert_allclose(out, out_t.detach().numpy(), **t)
    for ours, theirs in ((dq, tq), (dk, tk), (dv, tv)):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), **t)


def test_table():
    assert cpu.algorithm(197, 197, None, None) == "heads"                  # ViT
    assert cpu.algorithm(4096, 4096, None, None) == "flash"                # long sequences
    assert cpu.algorithm(4096, 4096, np.zeros((1, 1)), None) == "batched"  # a mask: only batched takes it
    assert cpu.algorithm(8, 8, None, np.ones((8, 8))) == "batched"         # dropout too
    with use_algorithm("attention", "flash"):
        assert cpu.algorithm(8, 8, np.zeros((1, 1)), None) == "batched"    # forcing cannot drop the mask


def test_flash_never_holds_the_scores():
    """NumPy's allocations during a flash forward + backward at L = S = 2048 stay far below the
    16 MiB one head's (L, S) float32 scores take (the batched algorithm's peak is several of
    those). Numba's own tile temporaries are not traced; they are 64 x 256 per thread."""
    rng = np.random.default_rng(0)
    q, k, v, g = (rng.standard_normal((1, 1, 2048, 16)).astype(np.float32) for _ in range(4))
    with use_algorithm("attention", "flash"):
        cpu.attention_backward(g, q, k, v, cpu.attention_forward(q, k, v, None, 0.25, False, None)[1], 0.25, None)
        tracemalloc.start()
        out, state = cpu.attention_forward(q, k, v, None, 0.25, False, None)
        cpu.attention_backward(g, q, k, v, state, 0.25, None)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 2048 * 2048 * 4 / 8, f"{peak / 2**20:.1f} MiB traced"


BOUNDSCHECK = """
import numpy as np
from tinyvision.kernels.cpu import attention as cpu
from tinyvision.kernels.dispatch import use_algorithm

cpu.BLOCK_Q, cpu.BLOCK_K = 3, 5
rng = np.random.default_rng(0)
for name in ("heads", "flash"):
    for L, S, causal in [(1, 1, False), (7, 11, True), (11, 7, True), (13, 13, False)]:
        q, k, v = rng.standard_normal((2, L, 4)), rng.standard_normal((2, S, 4)), rng.standard_normal((2, S, 3))
        with use_algorithm("attention", name):
            out, state = cpu.attention_forward(q, k, v, None, 0.5, causal, None)
            cpu.attention_backward(np.ones(out.shape), q, k, v, state, 0.5, None)
"""


@pytest.mark.slow
def test_attention_kernels_stay_in_bounds():
    run_under_boundscheck(BOUNDSCHECK)
