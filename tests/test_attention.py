"""scaled_dot_product_attention: every rung against PyTorch (float32 and float64, forward and
backward, Hypothesis over shapes, broadcast bool / additive masks and causal), the Numba and
CuPy rungs against the reference, float64 gradcheck, fully masked rows, large logits, dropout
(exactly off at p = 0, the right statistics for p > 0) and bad input."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyvision as tv
import tinyvision.nn.functional as F
from tests.conftest import requires_gpu
from tests.helpers import DTYPES, check_against_torch, tol
from tests.boundscheck import run_under_boundscheck
from tinyvision.kernels import dispatch
from tinyvision.kernels.reference import attention as ref

CPU_RUNGS = ["reference", "cpu"]
# float32: a softmax over S keys and two length-E / length-S dot products per output
SCALE32 = {np.float32: 10.0, np.float64: 1.0}


@st.composite
def attention_case(draw):
    """(q, k, v shapes, mask shape or None, mask kind) with the batch and mask broadcasting."""
    B, H = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    L, S, E, Ev = (draw(st.integers(1, 6)) for _ in range(4))
    kind = draw(st.sampled_from(["none", "bool", "float", "causal"]))
    mask_shape = draw(st.sampled_from([(L, S), (1, L, S), (H, 1, S), (B, 1, L, S), (B, H, L, S), (1, S)]))
    kv_batch = draw(st.sampled_from([(B, H), (B, 1), (H,) if B == 1 else (B, H)]))  # k/v broadcast over heads
    return (B, H, L, E), kv_batch + (S, E), kv_batch + (S, Ev), mask_shape, kind


@pytest.mark.parametrize("rung", CPU_RUNGS)
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=20)
@given(case=attention_case(), seed=st.integers(0, 2**16))
def test_matches_torch(rung, dtype, case, seed):
    qs, ks, vs, mask_shape, kind = case
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s).astype(dtype) for s in (qs, ks, vs)]
    kw = dict(is_causal=kind == "causal")
    if kind == "bool":  # some rows may end up fully masked: both sides give a zero row there
        arrays.append(rng.random(mask_shape) > 0.3)
    elif kind == "float":
        arrays.append(rng.standard_normal(mask_shape).astype(dtype))
    with dispatch.use(rung):
        check_against_torch(lambda *t: F.scaled_dot_product_attention(*t[:3], attn_mask=(t[3:] or [None])[0], **kw),
                            lambda *t: TF.scaled_dot_product_attention(*t[:3], attn_mask=(t[3:] or [None])[0], **kw),
                            arrays, dtype=dtype, scale=SCALE32[dtype])


@pytest.mark.parametrize("rung", CPU_RUNGS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_custom_scale_and_large_logits(rung, dtype):
    """Logits of order 1e4 (scale 100, entries of size ~3): the max shift keeps exp finite and
    the forward matches torch. The softmax is then saturated (one-hot up to 1e-30), and its
    float32 gradient is rounding noise on both sides, so gradients are compared in float64."""
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((2, 2, 5, 16)).astype(dtype) * 3 for _ in range(3)]
    ours = [tv.tensor(a, requires_grad=True) for a in arrays]
    with dispatch.use(rung):
        out = F.scaled_dot_product_attention(*ours, scale=100.0)
        out.sum().backward()
        assert all(np.isfinite(t.grad.numpy()).all() for t in ours)
        theirs = TF.scaled_dot_product_attention(*(torch.tensor(a) for a in arrays), scale=100.0)
        np.testing.assert_allclose(out.detach().numpy(), theirs.numpy(), **tol(dtype, SCALE32[dtype]))
        if dtype == np.float64:  # scores of 1e4 carry 1e-12 of rounding; dq = 100 * dS @ k scales it up
            check_against_torch(lambda *t: F.scaled_dot_product_attention(*t, scale=100.0),
                                lambda *t: TF.scaled_dot_product_attention(*t, scale=100.0), arrays,
                                scale=1e3)


# --------------------------------------------------------------------------- rungs against the reference

def _rung_equals_reference(rung, to_device, dtype):
    import importlib

    from tinyvision.kernels.compat import to_numpy

    fast = importlib.import_module(f"tinyvision.kernels.{rung}.attention")
    rng = np.random.default_rng(4)
    shapes = [(2, 3, 7, 8), (2, 3, 9, 8), (2, 3, 9, 5), (2, 3, 7, 5)]  # q, k, v, dL/dout
    q, k, v, g = (rng.standard_normal(s).astype(dtype) for s in shapes)
    bias = np.where(rng.random((7, 9)) > 0.2, rng.standard_normal((7, 9)), -np.inf).astype(dtype)
    bias[3] = -np.inf  # a fully masked row
    drop = ((rng.random((2, 3, 7, 9)) > 0.25) / 0.75).astype(dtype)
    for b, causal, d in [(None, False, None), (bias, False, None), (None, True, drop), (bias, False, drop)]:
        dev = [to_device(a) if a is not None else None for a in (q, k, v, b, d, g)]
        out, probs = ref.attention_forward(q, k, v, b, 0.3, causal, d)
        out2, probs2 = fast.attention_forward(*dev[:4], 0.3, causal, dev[4])
        np.testing.assert_allclose(to_numpy(out2), out, **tol(dtype, SCALE32[dtype]))
        np.testing.assert_allclose(to_numpy(probs2), probs, **tol(dtype, SCALE32[dtype]))
        grads = ref.attention_backward(g, q, k, v, probs, 0.3, d)
        grads2 = fast.attention_backward(dev[5], *dev[:3], to_device(probs), 0.3, dev[4])
        for name, a, b2 in zip(("dq", "dk", "dv", "dscores"), grads, grads2):
            np.testing.assert_allclose(to_numpy(b2), a, **tol(dtype, SCALE32[dtype]), err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cpu_rung_equals_reference(dtype):
    _rung_equals_reference("cpu", np.asarray, dtype)


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_rung_equals_reference(dtype):
    from tinyvision.kernels.compat import cupy

    _rung_equals_reference("gpu", cupy.asarray, dtype)


# --------------------------------------------------------------------------- gradcheck (float64)

@pytest.mark.parametrize("rung", CPU_RUNGS)
def test_gradcheck(rung):
    rng = np.random.default_rng(5)
    q, k, v = (tv.tensor(rng.standard_normal(s), requires_grad=True) for s in [(2, 3, 4), (2, 5, 4), (2, 5, 3)])
    mask = tv.tensor(rng.standard_normal((3, 5)), requires_grad=True)
    with dispatch.use(rung):
        tv.gradcheck(lambda *t: F.scaled_dot_product_attention(*t), [q, k, v])
        tv.gradcheck(lambda *t: F.scaled_dot_product_attention(*t[:3], attn_mask=t[3]), [q, k, v, mask])
        tv.gradcheck(lambda *t: F.scaled_dot_product_attention(*t, is_causal=True, scale=0.7), [q, k, v])


# --------------------------------------------------------------------------- fully masked rows

@pytest.mark.parametrize("rung", CPU_RUNGS)
@pytest.mark.parametrize("mask_dtype", [bool, np.float64])
def test_fully_masked_row_gives_zero_output_and_zero_gradient(rung, mask_dtype):
    rng = np.random.default_rng(6)
    q, k, v = (tv.tensor(rng.standard_normal(s), requires_grad=True) for s in [(1, 4, 3), (1, 5, 3), (1, 5, 2)])
    allowed = rng.random((4, 5)) > 0.3
    allowed[0] = True
    allowed[2] = False  # query 2 may attend to nothing
    mask = allowed if mask_dtype is bool else np.where(allowed, 0.0, -np.inf)
    with dispatch.use(rung):
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=tv.tensor(mask))
        out.backward(tv.ones(out.shape))
    np.testing.assert_array_equal(out.detach().numpy()[0, 2], 0.0)
    np.testing.assert_array_equal(q.grad.numpy()[0, 2], 0.0)
    assert np.isfinite(k.grad.numpy()).all() and np.isfinite(v.grad.numpy()).all()
    # the other rows are untouched by the rule: they match torch; and so do k's and v's gradients
    tq, tk, tv_ = (torch.tensor(t.detach().numpy(), requires_grad=True) for t in (q, k, v))
    theirs = TF.scaled_dot_product_attention(tq, tk, tv_, attn_mask=torch.tensor(allowed))
    theirs.backward(torch.ones(theirs.shape, dtype=theirs.dtype))
    rows = [0, 1, 3]
    np.testing.assert_allclose(out.detach().numpy()[:, rows], theirs.detach().numpy()[:, rows], **tol(np.float64))
    np.testing.assert_allclose(v.grad.numpy(), tv_.grad.numpy(), **tol(np.float64))
    np.testing.assert_allclose(k.grad.numpy(), tk.grad.numpy(), **tol(np.float64))


# --------------------------------------------------------------------------- dropout

@pytest.mark.parametrize("rung", CPU_RUNGS)
def test_dropout_zero_is_exactly_no_dropout(rung):
    rng = np.random.default_rng(7)
    q, k, v = (tv.tensor(rng.standard_normal((2, 4, 3))) for _ in range(3))
    with dispatch.use(rung):
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=0.0)
        b = F.scaled_dot_product_attention(q, k, v)
    np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("rung", CPU_RUNGS)
def test_dropout_statistics_and_gradient(rung):
    """q = k = 0 makes every weight 1/S; v = I makes out = dropped weights, so out holds
    each weight's fate: 0 with probability p, else (1/S) / (1 - p)."""
    p, S = 0.3, 64
    q = tv.zeros((8, S, 4))
    v = tv.tensor(np.broadcast_to(np.eye(S, dtype=np.float32), (8, S, S)).copy())
    tv.manual_seed(0)
    with dispatch.use(rung):
        out = F.scaled_dot_product_attention(q, q, v, dropout_p=p).numpy()
    n = out.size
    dropped = (out == 0).mean()
    assert abs(dropped - p) < 4 * np.sqrt(p * (1 - p) / n), dropped  # 4 sigma of a binomial
    np.testing.assert_allclose(out[out != 0], 1 / (S * (1 - p)), rtol=1e-6)

    # the backward reuses the forward's mask: fixed seed inside the function -> gradcheck holds
    rng = np.random.default_rng(8)
    qkv = [tv.tensor(rng.standard_normal(s), requires_grad=True) for s in [(2, 3, 4), (2, 5, 4), (2, 5, 3)]]

    def dropped_attention(*t):
        tv.manual_seed(1)
        return F.scaled_dot_product_attention(*t, dropout_p=0.4)

    with dispatch.use(rung):
        tv.gradcheck(dropped_attention, qkv)


# --------------------------------------------------------------------------- Numba bounds

@pytest.mark.slow  # recompiles every kernel with bounds checks (tens of seconds): make test-slow
def test_numba_kernels_stay_in_bounds():
    """The fused softmax kernels, compiled with bounds checks: L != S, causal with L > S and
    L < S, single tokens, masks with fully blocked rows, dropout."""
    run_under_boundscheck("""
import numpy as np
import tinyvision as tv
import tinyvision.nn.functional as F
from tinyvision.kernels import dispatch
with dispatch.use("cpu"):
    for L, S, causal in [(1, 1, False), (1, 1, True), (5, 3, True), (3, 5, True), (4, 7, False)]:
        q, k, v = (tv.randn(2, n, 3, requires_grad=True) for n in (L, S, S))
        F.scaled_dot_product_attention(q, k, v, is_causal=causal, dropout_p=0.2).sum().backward()
        mask = tv.tensor(np.arange(L * S).reshape(L, S) % 3 == 0)
        F.scaled_dot_product_attention(q, k, v, attn_mask=mask).sum().backward()
""")


# --------------------------------------------------------------------------- bad input

def test_bad_input_names_the_arguments():
    q, k, v = tv.zeros((2, 4, 8)), tv.zeros((2, 5, 8)), tv.zeros((2, 5, 3))
    with pytest.raises(ValueError, match=r"same last dim.*query \(2, 4, 8\), key \(2, 5, 6\), value \(2, 5, 3\)"):
        F.scaled_dot_product_attention(q, tv.zeros((2, 5, 6)), v)
    with pytest.raises(ValueError, match=r"key and value must have the same sequence length.*value \(2, 6, 3\)"):
        F.scaled_dot_product_attention(q, k, tv.zeros((2, 6, 3)))
    with pytest.raises(ValueError, match="batch dims"):
        F.scaled_dot_product_attention(q, tv.zeros((3, 5, 8)), tv.zeros((3, 5, 3)))
    with pytest.raises(ValueError, match=r"attn_mask of shape \(3, 5\) does not broadcast"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=tv.zeros((3, 5)))
    with pytest.raises(ValueError, match="not both"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=tv.zeros((4, 5)), is_causal=True)
    with pytest.raises(ValueError, match="dropout_p"):
        F.scaled_dot_product_attention(q, k, v, dropout_p=1.5)
    with pytest.raises(TypeError, match="query must be a float Tensor"):
        F.scaled_dot_product_attention(tv.zeros((4,)), k, v)


# --------------------------------------------------------------------------- grouped-query attention
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hq, hkv, causal", [(4, 2, False), (6, 3, True), (3, 1, False), (2, 2, True)])
def test_enable_gqa_matches_torch(hq, hkv, causal, dtype):
    """Query heads share key/value heads in consecutive groups; the shared heads' gradients
    sum over the query heads they served."""
    rng = np.random.default_rng(hq * 10 + hkv)
    q, k = rng.standard_normal((2, hq, 3, 4)), rng.standard_normal((2, hkv, 5, 4))
    v = rng.standard_normal((2, hkv, 5, 2))
    if causal:
        k, v = k[:, :, :3], v[:, :, :3]
    cast = [a.astype(dtype) for a in (q, k, v)]
    check_against_torch(lambda *t: F.scaled_dot_product_attention(*t, is_causal=causal, enable_gqa=True),
                        lambda *t: TF.scaled_dot_product_attention(*t, is_causal=causal, enable_gqa=True),
                        cast, scale=SCALE32[dtype])
    if dtype == np.float64:
        assert tv.gradcheck(lambda *t: F.scaled_dot_product_attention(*t, is_causal=causal, enable_gqa=True),
                            [tv.tensor(a, requires_grad=True) for a in (q, k, v)])


def test_enable_gqa_bad_heads_are_named():
    q, k = tv.zeros((1, 4, 3, 2)), tv.zeros((1, 3, 3, 2))
    with pytest.raises(ValueError, match=r"the query's heads \(4\) to be a multiple of it.*key \(1, 3, 3, 2\)"):
        F.scaled_dot_product_attention(q, k, k, enable_gqa=True)
    with pytest.raises(ValueError, match="enable_gqa needs a heads dim"):
        F.scaled_dot_product_attention(tv.zeros((3, 2)), tv.zeros((3, 2)), tv.zeros((3, 2)), enable_gqa=True)
    with pytest.raises(ValueError, match="batch dims"):  # without enable_gqa the head counts must broadcast
        F.scaled_dot_product_attention(q, tv.zeros((1, 2, 3, 2)), tv.zeros((1, 2, 3, 2)))
