"""conv1d, conv2d, conv3d, conv_transpose2d, unfold and fold against PyTorch, by gradcheck,
and on bad input.

Each forward/backward comparison runs on the reference rung (NumPy) and on the Numba rung, so
that both are checked against torch directly, not only against each other.

Tolerance: a conv output sums Cg*KH*KW products (up to ~300 here) of N(0, 1) numbers, so its
float32 rounding error grows to a few 1e-6 in absolute terms; we compare with 10x the float32
elementwise tolerance (rtol 1e-4, atol 1e-5). float64 keeps 10x its tolerance as well.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyvision as tv
import tinyvision.nn.functional as F
from tinyvision.kernels import compat
from tinyvision.kernels.dispatch import use
from tests.conftest import requires_gpu
from tests.helpers import DTYPES, tol

SUM_SCALE = 10
RUNGS = ["reference", "cpu"]
# torch warns that it copies the input for an even 'same' kernel; so do we (F.pad)
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")


def _compare(ours_fn, torch_fn, arrays, dtype, rung):
    """Forward and the gradients of sum(out * u) w.r.t. every array, ours vs torch (on the CPU)."""
    device = "cuda" if rung == "gpu" else "cpu"
    ours = [tv.tensor(a, device=device, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    with use(rung):
        out = ours_fn(*ours)
        expected = torch_fn(*theirs)
        np.testing.assert_allclose(compat.to_numpy(out.data), expected.detach().numpy(), **tol(dtype, SUM_SCALE))
        u = np.random.default_rng(0).standard_normal(expected.shape).astype(dtype)
        (out * tv.tensor(u, device=device)).sum().backward()
    (expected * torch.tensor(u)).sum().backward()
    for i, (a, b) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose(compat.to_numpy(a.grad.data), b.grad.numpy(), **tol(dtype, SUM_SCALE),
                                   err_msg=f"gradient of argument {i}")


@st.composite
def conv_cases(draw, allow_same: bool = True):
    """Shapes and hyper-parameters of a valid conv2d, non-square everywhere."""
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    depthwise = groups > 1 and draw(st.booleans())
    cg = 1 if depthwise else draw(st.integers(1, 3))
    og = draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    if allow_same and draw(st.integers(0, 4)) == 0:
        stride, padding = (1, 1), "same"
        ph = pw = 0
    else:
        stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
        padding = (ph, pw)
    # sizes from "the dilated kernel just fits in the padded input" to a few more
    h = max(1, dh * (kh - 1) + 1 - 2 * ph) + draw(st.integers(0, 4))
    w = max(1, dw * (kw - 1) + 1 - 2 * pw) + draw(st.integers(0, 4))
    n = draw(st.integers(1, 3))
    return dict(x=(n, groups * cg, h, w), w=(groups * og, cg, kh, kw), stride=stride, padding=padding,
                dilation=(dh, dw), groups=groups)


def _arrays(rng, *shapes, dtype):
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


# --------------------------------------------------------------------------- conv2d
@pytest.mark.parametrize("rung", RUNGS)
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=20)
@given(case=conv_cases())
def test_conv2d_matches_torch(case, dtype, rung):
    rng = np.random.default_rng(1)
    x, w, b = _arrays(rng, case["x"], case["w"], (case["w"][0],), dtype=dtype)
    kw = {k: case[k] for k in ("stride", "padding", "dilation", "groups")}
    _compare(lambda x, w, b: F.conv2d(x, w, b, **kw), lambda x, w, b: TF.conv2d(x, w, b, **kw),
             [x, w, b], dtype, rung)


EDGE_CASES = {  # x shape, w shape, stride, padding, dilation, groups
    "kernel larger than the unpadded input": ((2, 3, 3, 4), (4, 3, 5, 5), 1, 1, 1, 1),
    "stride larger than the kernel": ((2, 2, 9, 8), (3, 2, 2, 1), (4, 5), 0, 1, 1),
    "1x1 conv": ((3, 5, 4, 6), (7, 5, 1, 1), 1, 0, 1, 1),
    "single-pixel output": ((2, 4, 5, 3), (2, 4, 5, 3), 1, 0, 1, 1),
    "depthwise, strided, dilated": ((2, 4, 9, 7), (8, 1, 3, 2), 2, (1, 2), (2, 3), 4),
    "same, even kernel": ((1, 2, 6, 5), (3, 2, 4, 2), 1, "same", (1, 2), 1),
    "valid": ((1, 2, 6, 5), (3, 2, 3, 2), 1, "valid", 1, 1),
}


@pytest.mark.parametrize("rung", RUNGS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", EDGE_CASES)
def test_conv2d_edge_cases(name, dtype, rung):
    xs, ws, stride, padding, dilation, groups = EDGE_CASES[name]
    x, w, b = _arrays(np.random.default_rng(2), xs, ws, (ws[0],), dtype=dtype)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    _compare(lambda x, w, b: F.conv2d(x, w, b, **kw), lambda x, w, b: TF.conv2d(x, w, b, **kw),
             [x, w, b], dtype, rung)


def test_conv2d_unbatched_input():
    x, w = _arrays(np.random.default_rng(3), (3, 6, 5), (4, 3, 3, 3), dtype=np.float64)
    out = F.conv2d(tv.tensor(x), tv.tensor(w), padding=1)
    np.testing.assert_allclose(out.numpy(), TF.conv2d(torch.tensor(x), torch.tensor(w), padding=1).numpy(),
                               **tol(np.float64, SUM_SCALE))


def test_conv2d_chained_layers_match_torch():
    """The Numba rung returns an NCHW view of channels-last memory; a second conv (and its
    backward) must read that layout correctly."""
    x, w1, w2 = _arrays(np.random.default_rng(4), (2, 3, 8, 7), (5, 3, 3, 3), (4, 5, 3, 2), dtype=np.float64)
    _compare(lambda x, a, b: F.conv2d(F.conv2d(x, a, padding=1), b, stride=2),
             lambda x, a, b: TF.conv2d(TF.conv2d(x, a, padding=1), b, stride=2), [x, w1, w2], np.float64, "cpu")


@pytest.mark.parametrize("rung", RUNGS)
def test_conv2d_gradcheck(rung):
    rng = np.random.default_rng(5)
    x, w, b = (tv.tensor(a, requires_grad=True) for a in _arrays(rng, (2, 4, 5, 6), (4, 2, 3, 2), (4,),
                                                                    dtype=np.float64))
    with use(rung):
        assert tv.gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=(1, 2), dilation=(1, 2),
                                                     groups=2), [x, w, b])


# --------------------------------------------------------------------------- conv1d / conv3d
@st.composite
def conv_nd_cases(draw, k: int):
    """A valid conv with k spatial dims: per axis kernel, stride, padding, dilation, size."""
    groups = draw(st.sampled_from([1, 2]))
    cg, og = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(k))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(k))
    if draw(st.integers(0, 3)) == 0:
        stride, padding = (1,) * k, "same"
        pads = (0,) * k
    else:
        stride = tuple(draw(st.integers(1, 2)) for _ in range(k))
        padding = pads = tuple(draw(st.integers(0, 1)) for _ in range(k))
    size = tuple(max(1, d * (kk - 1) + 1 - 2 * p) + draw(st.integers(0, 2))
                 for kk, d, p in zip(kernel, dilation, pads))
    return dict(x=(draw(st.integers(1, 2)), groups * cg) + size, w=(groups * og, cg) + kernel, stride=stride,
                padding=padding, dilation=dilation, groups=groups)


@pytest.mark.parametrize("rung", RUNGS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k, ours, theirs", [(1, F.conv1d, TF.conv1d), (3, F.conv3d, TF.conv3d)],
                         ids=["conv1d", "conv3d"])
@settings(max_examples=8)
@given(data=st.data())
def test_conv1d_conv3d_match_torch(k, ours, theirs, dtype, rung, data):
    """Both run on the conv2d ladder (a unit axis; a sum over depth taps): each rung vs torch."""
    case = data.draw(conv_nd_cases(k))
    x, w, b = _arrays(np.random.default_rng(11), case["x"], case["w"], (case["w"][0],), dtype=dtype)
    kw = {key: case[key] for key in ("stride", "padding", "dilation", "groups")}
    _compare(lambda x, w, b: ours(x, w, b, **kw), lambda x, w, b: theirs(x, w, b, **kw), [x, w, b], dtype, rung)


@pytest.mark.parametrize("k, ours", [(1, F.conv1d), (3, F.conv3d)], ids=["conv1d", "conv3d"])
def test_conv1d_conv3d_gradcheck_and_unbatched(k, ours):
    rng = np.random.default_rng(12)
    x, w, b = (tv.tensor(a, requires_grad=True) for a in _arrays(rng, (2, 4) + (5,) * k, (4, 2) + (2,) * k, (4,),
                                                                    dtype=np.float64))
    kw = dict(stride=(2,) + (1,) * (k - 1), padding=(1,) + (0,) * (k - 1), dilation=(1,) * (k - 1) + (2,), groups=2)
    assert tv.gradcheck(lambda x, w, b: ours(x, w, b, **kw), [x, w, b])
    theirs = TF.conv1d if k == 1 else TF.conv3d
    x0, w0 = x.detach().numpy()[0], w.detach().numpy()
    out = ours(tv.tensor(x0), tv.tensor(w0), padding="same", groups=2)
    expected = theirs(torch.tensor(x0), torch.tensor(w0), padding="same", groups=2).numpy()
    np.testing.assert_allclose(out.numpy(), expected, **tol(np.float64, SUM_SCALE))


# --------------------------------------------------------------------------- conv_transpose2d
@st.composite
def transpose_cases(draw):
    case = draw(conv_cases(allow_same=False))
    (n, c_out, _, _), (c_in, _, kh, kw) = case["x"], case["w"]
    (sh, sw), (dh, dw), (ph, pw) = case["stride"], case["dilation"], case["padding"]
    op = (draw(st.integers(0, max(sh, dh) - 1)), draw(st.integers(0, max(sw, dw) - 1)))
    h, w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    # the output size must be >= 1: grow the input until it is
    while (h - 1) * sh - 2 * ph + dh * (kh - 1) + op[0] + 1 < 1:
        h += 1
    while (w - 1) * sw - 2 * pw + dw * (kw - 1) + op[1] + 1 < 1:
        w += 1
    # conv_transpose2d's weight is conv2d's: (C_in, C_out / groups, KH, KW)
    return dict(x=(n, c_in, h, w), w=(c_in, c_out // case["groups"], kh, kw), stride=case["stride"],
                padding=case["padding"], output_padding=op, dilation=case["dilation"], groups=case["groups"])


@pytest.mark.parametrize("rung", RUNGS)
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=15)
@given(case=transpose_cases())
def test_conv_transpose2d_matches_torch(case, dtype, rung):
    rng = np.random.default_rng(6)
    x, w, b = _arrays(rng, case["x"], case["w"], (case["w"][1] * case["groups"],), dtype=dtype)
    kw = {k: case[k] for k in ("stride", "padding", "output_padding", "groups", "dilation")}
    _compare(lambda x, w, b: F.conv_transpose2d(x, w, b, **kw), lambda x, w, b: TF.conv_transpose2d(x, w, b, **kw),
             [x, w, b], dtype, rung)


def test_conv_transpose2d_gradcheck():
    rng = np.random.default_rng(7)
    x, w, b = (tv.tensor(a, requires_grad=True) for a in _arrays(rng, (2, 4, 3, 4), (4, 3, 2, 3), (6,),
                                                                    dtype=np.float64))
    assert tv.gradcheck(lambda x, w, b: F.conv_transpose2d(x, w, b, stride=(2, 1), padding=(1, 0),
                                                           output_padding=(1, 0), groups=2, dilation=(1, 2)),
                        [x, w, b])


# --------------------------------------------------------------------------- unfold / fold
@pytest.mark.parametrize("rung", RUNGS)
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=15)
@given(case=conv_cases(allow_same=False))
def test_unfold_and_fold_match_torch(case, dtype, rung):
    n, c, h, w = case["x"]
    kw = dict(kernel_size=case["w"][2:], dilation=case["dilation"], padding=case["padding"], stride=case["stride"])
    rng = np.random.default_rng(8)
    (x,) = _arrays(rng, case["x"], dtype=dtype)
    _compare(lambda x: F.unfold(x, **kw), lambda x: TF.unfold(x, **kw), [x], dtype, rung)
    cols_shape = TF.unfold(torch.tensor(x), **kw).shape
    (cols,) = _arrays(rng, cols_shape, dtype=dtype)
    _compare(lambda c: F.fold(c, (h, w), **kw), lambda c: TF.fold(c, (h, w), **kw), [cols], dtype, rung)


def test_unfold_fold_gradcheck():
    rng = np.random.default_rng(9)
    x, cols = (tv.tensor(a, requires_grad=True) for a in _arrays(rng, (2, 2, 5, 4), (2, 8, 15), dtype=np.float64))
    kw = dict(kernel_size=(2, 2), dilation=(2, 1), padding=1, stride=(2, 1))
    assert tv.gradcheck(lambda x: F.unfold(x, **kw), [x])
    assert tv.gradcheck(lambda c: F.fold(c, (5, 4), **kw), [cols])


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", EDGE_CASES)
def test_gpu_functions_match_torch(name, dtype):
    """conv2d, conv_transpose2d and unfold/fold on CUDA tensors, through autograd, vs torch."""
    xs, ws, stride, padding, dilation, groups = EDGE_CASES[name]
    x, w, b = _arrays(np.random.default_rng(10), xs, ws, (ws[0],), dtype=dtype)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    _compare(lambda x, w, b: F.conv2d(x, w, b, **kw), lambda x, w, b: TF.conv2d(x, w, b, **kw), [x, w, b], dtype, "gpu")
    if isinstance(padding, str):
        return
    y = TF.conv2d(torch.tensor(x), torch.tensor(w), None, **kw).numpy()  # conv2d's w fits conv_transpose2d of y
    _compare(lambda y, w: F.conv_transpose2d(y, w, **kw), lambda y, w: TF.conv_transpose2d(y, w, **kw),
             [y, w], dtype, "gpu")
    ku = dict(kernel_size=ws[2:], dilation=dilation, padding=padding, stride=stride)
    _compare(lambda x: F.unfold(x, **ku), lambda x: TF.unfold(x, **ku), [x], dtype, "gpu")
    cols = TF.unfold(torch.tensor(x), **ku).numpy()
    _compare(lambda c: F.fold(c, xs[2:], **ku), lambda c: TF.fold(c, xs[2:], **ku), [cols], dtype, "gpu")


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_conv1d_conv3d_match_torch(dtype):
    """conv1d and conv3d on CUDA tensors reach the CuPy conv2d rung (through autograd) vs torch."""
    rng = np.random.default_rng(13)
    for ours, theirs, xs, ws in [(F.conv1d, TF.conv1d, (2, 4, 9), (6, 2, 3)),
                                 (F.conv3d, TF.conv3d, (2, 4, 5, 6, 4), (6, 2, 3, 2, 2))]:
        x, w, b = _arrays(rng, xs, ws, (ws[0],), dtype=dtype)
        kw = dict(stride=2, padding=1, groups=2)
        _compare(lambda x, w, b: ours(x, w, b, **kw), lambda x, w, b: theirs(x, w, b, **kw), [x, w, b], dtype, "gpu")


# --------------------------------------------------------------------------- bad input
def _t(*shape, dtype=np.float32):
    return tv.zeros(*shape, dtype=dtype)


@pytest.mark.parametrize("call, message", [
    (lambda: F.conv2d(_t(2, 5, 8, 8), _t(8, 2, 3, 3), groups=2), r"input has 5 channels.*expects 4"),
    (lambda: F.conv2d(_t(2, 3, 8, 8), _t(8, 4, 3, 3)), r"input has 3 channels.*expects 4"),
    (lambda: F.conv2d(_t(2, 6, 8, 8), _t(7, 2, 3, 3), groups=3), r"7 output channels.*groups=3"),
    (lambda: F.conv2d(_t(2, 3, 4, 4), _t(8, 3, 7, 3)), r"output height would be -2.*input 4.*padding 0.*kernel_size 7"),
    (lambda: F.conv2d(_t(2, 3, 4, 4), _t(8, 3, 3, 3), dilation=(1, 3)), r"output width would be -2.*dilation 3"),
    (lambda: F.conv2d(_t(3, 4, 4), _t(8, 3, 3)), r"weight must be 4-D"),
    (lambda: F.conv2d(_t(4, 4), _t(8, 3, 3, 3)), r"input must be 4-D.*\(4, 4\)"),
    (lambda: F.conv2d(_t(1, 3, 4, 4), _t(8, 3, 3, 3), _t(4)), r"bias must have shape \(8,\)"),
    (lambda: F.conv2d(_t(1, 3, 4, 4), _t(8, 3, 3, 3), stride=0), r"stride must be >= 1"),
    (lambda: F.conv2d(_t(1, 3, 4, 4), _t(8, 3, 3, 3), padding=-1), r"padding must be >= 0"),
    (lambda: F.conv2d(_t(1, 3, 4, 4), _t(8, 3, 3, 3), padding=(1, 2, 3)), r"padding must be an int or a pair"),
    (lambda: F.conv2d(_t(1, 3, 4, 4), _t(8, 3, 3, 3), padding="full"), r"'same' or 'valid'"),
    (lambda: F.conv2d(_t(1, 3, 4, 4), _t(8, 3, 3, 3), stride=2, padding="same"), r"'same' needs stride 1"),
    (lambda: F.conv2d(_t(1, 3, 4, 4), _t(8, 3, 3, 3, dtype=np.float64)), r"weight is float64 but input is float32"),
    (lambda: F.conv2d(_t(1, 3, 4, 4), _t(8, 3, 3, 3), groups=0), r"groups must be a positive int"),
    (lambda: F.conv2d(_t(1, 3, 4, 4, dtype=np.int64), _t(8, 3, 3, 3)), r"input must be float32 or float64"),
    (lambda: F.unfold(_t(1, 2, 3, 3, dtype=np.float16), kernel_size=2), r"input must be float32 or float64"),
    (lambda: F.conv_transpose2d(_t(1, 3, 4, 4), _t(4, 2, 3, 3)), r"input has 3 channels.*expects 4"),
    (lambda: F.conv_transpose2d(_t(1, 4, 4, 4), _t(4, 2, 3, 3), stride=2, output_padding=2),
     r"output_padding .* must be smaller than stride"),
    (lambda: F.conv_transpose2d(_t(1, 4, 1, 1), _t(4, 2, 1, 1), padding=1), r"output size would be"),
    (lambda: F.unfold(_t(1, 2, 3, 3), kernel_size=4), r"output height would be 0"),
    (lambda: F.fold(_t(1, 8, 5), (4, 4), kernel_size=2), r"5 columns.*3 x 3 = 9 blocks"),
    (lambda: F.fold(_t(1, 7, 9), (4, 4), kernel_size=2), r"7 rows.*not divisible"),
    (lambda: F.conv1d(_t(2, 3, 8), _t(4, 2, 3)), r"conv1d: input has 3 channels.*expects 2"),
    (lambda: F.conv1d(_t(2, 3, 2), _t(4, 3, 3)), r"conv1d: output length would be 0"),
    (lambda: F.conv1d(_t(2, 3, 8, 8), _t(4, 3, 3)), r"conv1d: input must be 3-D \(N, C, L\)"),
    (lambda: F.conv1d(_t(2, 3, 8), _t(4, 3, 3), stride=(1, 2)), r"conv1d: stride must be an int or a tuple of 1 ints"),
    (lambda: F.conv3d(_t(2, 3, 4, 4, 4), _t(4, 3, 3, 3)), r"conv3d: weight must be 5-D"),
    (lambda: F.conv3d(_t(2, 3, 2, 4, 4), _t(4, 3, 3, 3, 3)), r"conv3d: output depth would be 0"),
    (lambda: F.conv3d(_t(2, 3, 4, 4, 4), _t(4, 3, 3, 3, 3), stride=2, padding="same"),
     r"conv3d: padding='same' needs stride 1"),
])
def test_bad_input_is_named(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()
