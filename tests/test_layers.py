"""Every layer against its torch.nn counterpart with the same weights.

torch's layer is built (and its parameters randomised so that no weight is a trivial 1 or 0),
its state_dict is loaded into ours through ``load_state_dict`` (which also checks that the key
names and shapes agree), both run on the same input, and we compare the outputs, the input
gradients and every parameter gradient of sum(out * u) for a fixed random u, in float32 and
float64. Tolerances are those of tests/helpers.py; a case that sums many terms (conv,
attention) scales them, with the reason next to it.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyvision as tv
import tinyvision.nn as nn
import tinyvision.nn.functional as F
from tests.helpers import DTYPES, tol


def needs(*ops: str):
    """The functional ops a layer test relies on. Every one exists now, so a missing op is a
    failure (at collection, naming it), never a skip: a test of a feature that exists must
    fail when the feature breaks."""
    missing = [op for op in ops if not hasattr(F, op)]
    assert not missing, f"tinyvision.nn.functional lacks {missing}"
    return pytest.mark.usefixtures()  # a no-op mark: the decorator stays where it documents the ops


def torch_dtype(dtype):
    return torch.float64 if np.dtype(dtype) == np.float64 else torch.float32


def randomize(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-1.0, 1.0)
    return module


def as_tuple(x: Any) -> tuple:
    return x if isinstance(x, tuple) else (x,)


def parity(ours: nn.Module, theirs: torch.nn.Module, arrays: list[np.ndarray], dtype: Any,
           scale: float = 1.0, call: Callable = lambda m, *xs: m(*xs)) -> tuple:
    """Load torch's weights into ours; compare outputs, input grads and parameter grads.

    ``arrays`` are the positional inputs (float ones are cast to ``dtype`` and require grad);
    ``call(module, *inputs)`` may return a tuple (each non-None output is compared and
    receives its own random upstream gradient). Returns (ours, theirs) outputs.
    """
    theirs.to(torch_dtype(dtype))
    ours.to(dtype)
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in theirs.state_dict().items()]
    ours.load_state_dict(theirs.state_dict())
    arrays = [a.astype(dtype) if a.dtype.kind == "f" else a for a in arrays]
    xs = [tv.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    xts = [torch.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    outs, outs_t = as_tuple(call(ours, *xs)), as_tuple(call(theirs, *xts))
    rng = np.random.default_rng(1)
    loss, loss_t = 0, 0
    for i, (y, yt) in enumerate(zip(outs, outs_t)):
        assert (y is None) == (yt is None), f"output {i}"
        if y is None:
            continue
        assert np.isfinite(yt.detach().numpy()).all(), f"torch output {i} is not finite: the case tests nothing"
        np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), **tol(dtype, scale),
                                   err_msg=f"output {i}")
        if yt.requires_grad:
            u = rng.standard_normal(yt.shape).astype(dtype)
            loss, loss_t = loss + (y * tv.tensor(u)).sum(), loss_t + (yt * torch.tensor(u)).sum()
    if isinstance(loss_t, torch.Tensor):
        loss.backward()
        loss_t.backward()
        for i, (x, xt) in enumerate(zip(xs, xts)):
            if xt.grad is not None:
                np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), **tol(dtype, scale),
                                           err_msg=f"gradient of input {i}")
        grads_t = {n: p.grad for n, p in theirs.named_parameters()}
        for name, p in ours.named_parameters():
            gt = grads_t[name]
            assert (p.grad is None) == (gt is None), name
            if gt is not None:
                np.testing.assert_allclose(p.grad.numpy(), gt.numpy(), **tol(dtype, scale),
                                           err_msg=f"gradient of {name}")
    return outs, outs_t


X = np.random.default_rng(0).standard_normal


# ----------------------------------------------------------------------------- stateless + Linear
SIMPLE = [
    ("Linear", lambda lib: lib.Linear(5, 3), (4, 5), 1),
    ("Linear-3d-nobias", lambda lib: lib.Linear(5, 3, bias=False), (2, 3, 5), 1),
    ("ReLU", lambda lib: lib.ReLU(), (3, 4), 1),
    # ours ignores inplace; torch's in-place ReLU refuses a leaf that requires grad
    ("ReLU-inplace-flag", lambda lib: lib.ReLU(inplace=lib is nn), (3, 4), 1),
    ("GELU", lambda lib: lib.GELU(), (3, 4), 1),
    ("GELU-tanh", lambda lib: lib.GELU("tanh"), (3, 4), 1),
    ("SiLU", lambda lib: lib.SiLU(), (3, 4), 1),
    ("Tanh", lambda lib: lib.Tanh(), (3, 4), 1),
    ("Sigmoid", lambda lib: lib.Sigmoid(), (3, 4), 1),
    ("Softmax", lambda lib: lib.Softmax(dim=1), (2, 5, 3), 1),
    ("Flatten", lambda lib: lib.Flatten(), (2, 3, 4, 5), 1),
    ("Identity", lambda lib: lib.Identity(7, key="ignored"), (2, 3), 1),
    ("LayerNorm", lambda lib: lib.LayerNorm((4, 5)), (3, 4, 5), 1),
    ("LayerNorm-eps1e-6-nobias", lambda lib: lib.LayerNorm(5, eps=1e-6, bias=False), (3, 5), 1),
    ("GroupNorm", lambda lib: lib.GroupNorm(2, 6), (2, 6, 3, 3), 1),
    ("GroupNorm-noaffine", lambda lib: lib.GroupNorm(3, 6, affine=False), (2, 6, 4), 1),
    ("LocalResponseNorm", lambda lib: lib.LocalResponseNorm(3, alpha=0.1, beta=0.75, k=2.0), (2, 6, 3, 3), 1),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,make,shape,scale", SIMPLE, ids=[c[0] for c in SIMPLE])
def test_simple_layers_match_torch(name, make, shape, scale, dtype):
    parity(make(nn), randomize(make(torch.nn)), [X(shape)], dtype, scale)


def test_softmax_without_dim_picks_torchs_legacy_dim():
    x = X((2, 3, 4))
    with pytest.warns(UserWarning, match="dim"):
        ours = nn.Softmax()(tv.tensor(x))
    with pytest.warns(UserWarning):
        theirs = torch.nn.Softmax()(torch.tensor(x))
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), **tol(np.float64))


@settings(max_examples=10)
@given(lead=st.lists(st.integers(1, 3), min_size=0, max_size=3), fin=st.integers(1, 6), fout=st.integers(1, 6))
def test_linear_any_leading_shape(lead, fin, fout):
    parity(nn.Linear(fin, fout), randomize(torch.nn.Linear(fin, fout)), [X((*lead, fin))], np.float64)


# ----------------------------------------------------------------------------- conv, pooling, resize
CONV = [  # float32 scale 10: each output sums up to C_in*k*k = 36 products
    ("Conv2d", lambda lib: lib.Conv2d(4, 6, 3, stride=2, padding=1), (2, 4, 7, 7)),
    ("Conv2d-groups-dilation-nobias", lambda lib: lib.Conv2d(4, 6, 3, padding=2, dilation=2, groups=2, bias=False), (2, 4, 6, 5)),
    ("Conv2d-same-k4", lambda lib: lib.Conv2d(3, 2, 4, padding="same"), (1, 3, 6, 6)),
    ("Conv2d-rect", lambda lib: lib.Conv2d(2, 3, (3, 1), stride=(1, 2), padding=(1, 0)), (2, 2, 5, 6)),
    ("Conv2d-reflect", lambda lib: lib.Conv2d(3, 4, 3, stride=2, padding=(2, 1), padding_mode="reflect"), (2, 3, 6, 5)),
    ("Conv2d-replicate-dilated", lambda lib: lib.Conv2d(2, 4, 3, padding=2, dilation=2, padding_mode="replicate"), (1, 2, 5, 6)),
    ("Conv2d-circular-same-k4", lambda lib: lib.Conv2d(2, 3, (4, 3), padding="same", padding_mode="circular"), (2, 2, 5, 6)),
    ("ConvTranspose2d", lambda lib: lib.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1), (2, 4, 4, 5)),
    ("ConvTranspose2d-groups", lambda lib: lib.ConvTranspose2d(4, 6, 2, stride=2, groups=2, bias=False), (1, 4, 3, 3)),
]


@needs("conv2d", "conv_transpose2d")
@pytest.mark.filterwarnings("ignore:Using padding='same'")  # torch's note on its own padded copy
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,make,shape", CONV, ids=[c[0] for c in CONV])
def test_conv_layers_match_torch(name, make, shape, dtype):
    parity(make(nn), randomize(make(torch.nn)), [X(shape)], dtype, scale=10)


@needs("conv_transpose2d")
def test_conv_transpose_output_size():
    make = lambda lib: lib.ConvTranspose2d(3, 2, 3, stride=2, padding=1)  # noqa: E731
    parity(make(nn), randomize(make(torch.nn)), [X((1, 3, 4, 4))], np.float64,
           call=lambda m, x: m(x, output_size=[8, 8]))
    with pytest.raises(ValueError, match=r"output_size.*\[7, 8\]"):
        make(nn)(tv.zeros(1, 3, 4, 4), output_size=(9, 9))


POOL = [
    ("MaxPool2d", lambda lib: lib.MaxPool2d(3, 2, 1), (2, 3, 7, 7)),
    ("MaxPool2d-ceil", lambda lib: lib.MaxPool2d(3, 2, ceil_mode=True), (1, 2, 8, 8)),
    ("MaxPool2d-dilation", lambda lib: lib.MaxPool2d(2, 1, dilation=2), (1, 2, 5, 5)),
    ("AvgPool2d", lambda lib: lib.AvgPool2d(3, 2, 1), (2, 3, 7, 7)),
    ("AvgPool2d-nopadcount-ceil", lambda lib: lib.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), (1, 2, 6, 6)),
    ("AdaptiveAvgPool2d", lambda lib: lib.AdaptiveAvgPool2d((3, 2)), (2, 3, 7, 5)),
    ("AdaptiveAvgPool2d-1", lambda lib: lib.AdaptiveAvgPool2d(1), (2, 3, 4, 4)),
    ("AdaptiveMaxPool2d", lambda lib: lib.AdaptiveMaxPool2d((2, 3)), (2, 3, 5, 7)),
]


@needs("max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,make,shape", POOL, ids=[c[0] for c in POOL])
def test_pooling_layers_match_torch(name, make, shape, dtype):
    parity(make(nn), make(torch.nn), [X(shape)], dtype)


@needs("max_pool2d", "adaptive_max_pool2d")
def test_pooling_return_indices_match_torch():
    x = X((1, 2, 6, 6))
    for make in (lambda lib: lib.MaxPool2d(2, return_indices=True),
                 lambda lib: lib.AdaptiveMaxPool2d(3, return_indices=True)):
        (_, idx), (_, idx_t) = parity(make(nn), make(torch.nn), [x], np.float64)
        np.testing.assert_array_equal(idx.numpy(), idx_t.numpy())


UPSAMPLE = [
    ("nearest-x2", lambda lib: lib.Upsample(scale_factor=2), (1, 2, 3, 4)),
    ("nearest-size", lambda lib: lib.Upsample(size=(5, 7)), (1, 2, 3, 4)),
    ("bilinear", lambda lib: lib.Upsample(scale_factor=2, mode="bilinear"), (2, 2, 3, 3)),
    ("bilinear-align", lambda lib: lib.Upsample(size=(5, 4), mode="bilinear", align_corners=True), (1, 3, 3, 3)),
    ("linear-1d", lambda lib: lib.Upsample(scale_factor=3, mode="linear"), (2, 3, 4)),
    ("trilinear-3d", lambda lib: lib.Upsample(size=(3, 5, 2), mode="trilinear"), (1, 2, 2, 3, 4)),
    ("nearest-exact", lambda lib: lib.Upsample(scale_factor=1.5, mode="nearest-exact"), (1, 2, 3, 4)),
    ("bicubic-align", lambda lib: lib.Upsample(size=(5, 7), mode="bicubic", align_corners=True), (1, 2, 3, 4)),
]


@needs("interpolate")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,make,shape", UPSAMPLE, ids=[c[0] for c in UPSAMPLE])
def test_upsample_matches_torch(name, make, shape, dtype):
    parity(make(nn), make(torch.nn), [X(shape)], dtype)


# ----------------------------------------------------------------------------- BatchNorm
BN = [
    ("BatchNorm1d-2d", lambda lib: lib.BatchNorm1d(4), (8, 4)),
    ("BatchNorm1d-3d", lambda lib: lib.BatchNorm1d(3, momentum=0.3), (4, 3, 5)),
    ("BatchNorm2d", lambda lib: lib.BatchNorm2d(3), (4, 3, 5, 5)),
    ("BatchNorm2d-cumulative", lambda lib: lib.BatchNorm2d(3, momentum=None), (2, 3, 4, 4)),
    ("BatchNorm2d-noaffine", lambda lib: lib.BatchNorm2d(3, affine=False, eps=1e-3), (2, 3, 4, 4)),
    ("BatchNorm2d-nobias", lambda lib: lib.BatchNorm2d(3, bias=False), (2, 3, 4, 4)),
    ("BatchNorm2d-untracked", lambda lib: lib.BatchNorm2d(3, track_running_stats=False), (2, 3, 4, 4)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,make,shape", BN, ids=[c[0] for c in BN])
def test_batchnorm_train_steps_then_eval_match_torch(name, make, shape, dtype):
    """Three training steps on different batches (output, gradients and the running mean,
    unbiased running variance and num_batches_tracked after each), then eval mode."""
    ours, theirs = make(nn), randomize(make(torch.nn))
    rng = np.random.default_rng(3)
    for step in range(3):
        x = rng.normal(2.0 * step, 1.0 + step, shape)  # the statistics move between steps
        parity(ours, theirs, [x], dtype)
        for key, v in theirs.state_dict().items():
            np.testing.assert_allclose(ours.state_dict()[key].numpy(), v.numpy(), **tol(dtype),
                                       err_msg=f"{key} after step {step}")
        ours.zero_grad()
        theirs.zero_grad()
    ours.eval()
    theirs.eval()
    parity(ours, theirs, [rng.normal(1.0, 2.0, shape)], dtype)


def test_batchnorm_rejects_wrong_rank_and_single_value():
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected 4-d input, got shape \(2, 3\)"):
        nn.BatchNorm2d(3)(tv.zeros(2, 3))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(tv.zeros(1, 3))


# ----------------------------------------------------------------------------- Embedding, Dropout
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding_idx", [None, 0, -1])
def test_embedding_matches_torch(padding_idx, dtype):
    idx = np.array([[0, 2, 4], [4, 4, 1]], dtype=np.int64)
    make = lambda lib: lib.Embedding(5, 3, padding_idx=padding_idx)  # noqa: E731
    parity(make(nn), randomize(make(torch.nn)), [idx], dtype)
    if padding_idx is not None:  # the padding row starts at zero
        assert np.all(nn.Embedding(5, 3, padding_idx=padding_idx).weight.detach().numpy()[padding_idx] == 0)


def test_dropout_statistics_and_eval_identity():
    p, n = 0.3, 200_000
    tv.manual_seed(0)
    drop = nn.Dropout(p)
    x = tv.ones(n, requires_grad=True)
    y = drop(x)
    out = y.detach().numpy()
    zeros = np.mean(out == 0)
    assert abs(zeros - p) < 5 * np.sqrt(p * (1 - p) / n)  # binomial: 5 standard errors
    np.testing.assert_allclose(out[out != 0], 1 / (1 - p), rtol=1e-6)  # inverted scaling
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), out)  # d(x * mask/(1-p))/dx = mask/(1-p)
    drop.eval()
    z = tv.tensor(X(10).astype(np.float32))
    np.testing.assert_array_equal(drop(z).numpy(), z.numpy())
    assert np.all(nn.Dropout(0.0)(z).numpy() == z.numpy())
    with pytest.raises(ValueError, match="p must be in"):
        nn.Dropout(1.5)


# ----------------------------------------------------------------------------- MultiheadAttention
E, H, L, S, N = 8, 2, 4, 5, 3


def mha_inputs(batch_first: bool, unbatched: bool = False):
    shape = (lambda t: (t, E)) if unbatched else ((lambda t: (N, t, E)) if batch_first else (lambda t: (t, N, E)))
    return [X(shape(L)), X(shape(S)), X(shape(S))]


def key_padding():
    kpm = np.zeros((N, S), dtype=bool)
    kpm[0, -2:] = True  # sample 0 ignores its last two keys
    kpm[2, 0] = True
    return kpm


def per_head_mask():
    """(N * H, L, S) random bool mask; key 1 stays visible so that no row is fully masked
    (a fully masked row is NaN in both libraries and would test nothing)."""
    mask = np.random.default_rng(5).random((N * H, L, S)) < 0.3
    mask[..., 1] = False
    return mask


def causal_like():
    return np.triu(np.ones((L, S), dtype=bool), k=2)


MHA_CASES = {
    "plain": dict(),
    "key_padding_mask": dict(key_padding_mask=key_padding()),
    "bool_attn_mask": dict(attn_mask=causal_like()),
    "float_attn_mask": dict(attn_mask=X((L, S))),
    "per_head_mask_and_padding": dict(attn_mask=per_head_mask(), key_padding_mask=key_padding()),
    "float_key_padding": dict(key_padding_mask=X((N, S))),
    "per_head_weights": dict(average_attn_weights=False),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("case", list(MHA_CASES))
def test_multihead_attention_matches_torch(case, batch_first, dtype):
    kwargs = MHA_CASES[case]
    make = lambda lib: lib.MultiheadAttention(E, H, batch_first=batch_first)  # noqa: E731

    def call(m, q, k, v):
        torchy = isinstance(m, torch.nn.Module)
        kw = {key: (torch.tensor(val) if torchy else val) for key, val in kwargs.items()}
        if "float" in case:  # float masks must have the query's dtype
            kw = {key: val.to(torch_dtype(dtype)) if torchy else val.astype(dtype) for key, val in kw.items()}
        return m(q, k, v, **kw)

    parity(make(nn), randomize(make(torch.nn)), mha_inputs(batch_first), dtype, scale=10, call=call)


MHA_VARIANTS = {  # module options beyond (E, H); key and value then have KDIM and VDIM features
    "kdim_vdim": dict(kdim=6, vdim=5),
    "bias_kv": dict(add_bias_kv=True),
    "zero_attn": dict(add_zero_attn=True),
    "all_nobias": dict(kdim=6, vdim=5, add_bias_kv=True, add_zero_attn=True, bias=False),
}


@needs("scaled_dot_product_attention")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("need_weights", [True, False])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("variant", list(MHA_VARIANTS))
def test_multihead_attention_kdim_vdim_and_extra_keys_match_torch(variant, masked, need_weights, dtype):
    """Separate q/k/v projection weights (kdim, vdim) and the appended bias / zero keys, with
    and without masks (which then gain a column per appended key), on both paths."""
    options = MHA_VARIANTS[variant]
    make = lambda lib: lib.MultiheadAttention(E, H, batch_first=True, **options)  # noqa: E731
    masks = dict(attn_mask=per_head_mask(), key_padding_mask=key_padding()) if masked else {}

    def call(m, q, k, v):
        kw = {key: torch.tensor(val) for key, val in masks.items()} if isinstance(m, torch.nn.Module) else masks
        return m(q, k, v, need_weights=need_weights, **kw)

    kv = [X((N, S, options.get("kdim", E))), X((N, S, options.get("vdim", E)))]
    (_, weights), _ = parity(make(nn), randomize(make(torch.nn)), [X((N, L, E)), *kv], dtype, scale=10, call=call)
    extra = options.get("add_bias_kv", False) + options.get("add_zero_attn", False)
    assert weights is None if not need_weights else weights.shape == (N, L, S + extra)


@needs("scaled_dot_product_attention")
@pytest.mark.parametrize("dtype", DTYPES)
def test_multihead_attention_fused_path_matches_torch(dtype):
    """need_weights=False goes through F.scaled_dot_product_attention."""
    make = lambda lib: lib.MultiheadAttention(E, H, batch_first=True)  # noqa: E731
    kpm = key_padding()
    call = lambda m, q, k, v: m(q, k, v, need_weights=False,  # noqa: E731
                                key_padding_mask=torch.tensor(kpm) if isinstance(m, torch.nn.Module) else kpm)
    parity(make(nn), randomize(make(torch.nn)), mha_inputs(True), dtype, scale=10, call=call)


def test_multihead_attention_unbatched_self_attention_and_causal():
    make = lambda lib: lib.MultiheadAttention(E, H, bias=False)  # noqa: E731
    x = X((L, E))
    parity(make(nn), randomize(make(torch.nn)), [x, x, x], np.float64)
    causal = np.triu(np.ones((L, L), dtype=bool), k=1)
    ours = make(nn)
    ours.load_state_dict(randomize(make(torch.nn)).state_dict())
    xs = tv.tensor(X((L, N, E)))
    a = ours(xs, xs, xs, is_causal=True)[0].detach().numpy()
    b = ours(xs, xs, xs, attn_mask=causal)[0].detach().numpy()
    np.testing.assert_array_equal(a, b)


def test_multihead_attention_dropout_only_in_training():
    m = nn.MultiheadAttention(E, H, dropout=0.5, batch_first=True)
    q = tv.tensor(X((N, L, E)).astype(np.float32))
    tv.manual_seed(0)
    _, w_train = m(q, q, q, average_attn_weights=False)
    m.eval()
    out1, w_eval = m(q, q, q)
    out2, _ = m(q, q, q)
    np.testing.assert_array_equal(out1.detach().numpy(), out2.detach().numpy())  # eval is deterministic
    np.testing.assert_allclose(w_eval.detach().numpy().sum(-1), 1.0, rtol=1e-5)  # returned weights are pre-dropout


def test_multihead_attention_bad_input_is_named():
    with pytest.raises(ValueError, match=r"embed_dim \(10\).*num_heads \(3\)"):
        nn.MultiheadAttention(10, 3)
    m = nn.MultiheadAttention(E, H)
    q, k, v = (tv.tensor(a) for a in mha_inputs(False))
    with pytest.raises(ValueError, match=r"attn_mask has shape \(2, 2\)"):
        m(q, k, v, attn_mask=np.zeros((2, 2), dtype=bool))
    with pytest.raises(ValueError, match=r"key_padding_mask has shape \(5, 3\), expected \(N, S\) = \(3, 5\)"):
        m(q, k, v, key_padding_mask=np.zeros((S, N), dtype=bool))
    with pytest.raises(ValueError, match="embed_dim=8"):
        m(tv.zeros(L, N, 6), k, v)
    with pytest.raises(ValueError, match=r"kdim=6, vdim=5\): got query \(3, 4, 8\), key \(3, 5, 8\)"):
        nn.MultiheadAttention(E, H, kdim=6, vdim=5)(q, k, v)


# ----------------------------------------------------------------------------- argument checks
def test_layer_argument_errors_are_named():
    with pytest.raises(ValueError, match=r"in_channels \(3\).*groups \(2\)"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match=r"padding_mode must be one of \('zeros', 'reflect', 'replicate', "
                       r"'circular'\), got 'mirror'"):
        nn.Conv2d(3, 4, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="only padding_mode='zeros'.*got 'reflect'"):
        nn.ConvTranspose2d(3, 4, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="padding='same' needs stride 1"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="kernel_size must be an int or a pair"):
        nn.Conv2d(3, 4, (1, 2, 3))
    with pytest.raises(ValueError, match=r"num_channels \(5\).*num_groups \(2\)"):
        nn.GroupNorm(2, 5)
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU("fast")


# ----------------------------------------------------------------------------- finite differences
GRADCHECK = [
    ("Linear", lambda: nn.Linear(4, 3), [(2, 4)], {}),
    ("Conv2d", lambda: nn.Conv2d(2, 3, 3, stride=2, padding=1, groups=1), [(1, 2, 5, 5)], {}),
    *[(f"Conv2d-{mode}", lambda mode=mode: nn.Conv2d(2, 2, 3, padding=(2, 1), padding_mode=mode), [(1, 2, 4, 3)], {})
      for mode in ("reflect", "replicate", "circular")],
    ("ConvTranspose2d", lambda: nn.ConvTranspose2d(2, 2, 3, stride=2), [(1, 2, 3, 3)], {}),
    ("BatchNorm2d-train", lambda: nn.BatchNorm2d(2), [(3, 2, 2, 2)], {}),
    ("GroupNorm", lambda: nn.GroupNorm(2, 4), [(2, 4, 3)], {}),
    ("MultiheadAttention", lambda: nn.MultiheadAttention(4, 2, batch_first=True), [(2, 3, 4)] * 3,
     dict(key_padding_mask=np.array([[False, False, True], [False, False, False]]))),
    ("MultiheadAttention-kdim-vdim-bias_kv-zero_attn",
     lambda: nn.MultiheadAttention(4, 2, batch_first=True, kdim=3, vdim=5, add_bias_kv=True, add_zero_attn=True),
     [(2, 3, 4), (2, 2, 3), (2, 2, 5)], dict(key_padding_mask=np.array([[False, True], [False, False]]))),
]


@pytest.mark.parametrize("name,make,shapes,kwargs", GRADCHECK, ids=[c[0] for c in GRADCHECK])
def test_layer_gradients_by_finite_differences(name, make, shapes, kwargs):
    """float64 central differences w.r.t. the inputs and every parameter (random directions)."""
    m = make().double()
    with tv.no_grad():  # non-trivial affine weights
        for p in m.parameters():
            p.data[...] = X(p.shape)
    xs = [tv.tensor(X(s), requires_grad=True) for s in shapes]
    params = list(m.parameters())

    def fn(*args):
        out = m(*args[:len(xs)], **kwargs)
        return out[0] if isinstance(out, tuple) else out

    assert tv.gradcheck(fn, xs + params, mode="random", n_directions=4)


# ----------------------------------------------------------------------------- layers added in #12
X3 = lambda shape: 3 * X(shape)  # noqa: E731  (activations: reach past their bends at +-3, 6)
NEW_LAYERS = [  # (id, make, input, float32 scale) -- each also compared by repr
    ("LeakyReLU", lambda lib: lib.LeakyReLU(0.2), X3((3, 4)), 1),
    ("PReLU", lambda lib: lib.PReLU(), X3((2, 3, 4)), 1),
    ("PReLU-per-channel", lambda lib: lib.PReLU(3, init=0.1), X3((2, 3, 2, 2)), 1),
    ("ELU", lambda lib: lib.ELU(0.5), X3((3, 4)), 1),
    ("ReLU6", lambda lib: lib.ReLU6(), X3((3, 4)), 1),
    ("Hardtanh", lambda lib: lib.Hardtanh(-0.5, 2.0), X3((3, 4)), 1),
    ("SELU", lambda lib: lib.SELU(), X3((3, 4)), 1),
    ("Hardswish", lambda lib: lib.Hardswish(), X3((3, 4)), 1),
    ("Hardsigmoid", lambda lib: lib.Hardsigmoid(), X3((3, 4)), 1e3),  # torch's float 1/6 (test_activation.py)
    ("Mish", lambda lib: lib.Mish(), X3((3, 4)), 1),
    ("Softplus", lambda lib: lib.Softplus(2.0, 5.0), X3((3, 4)), 1),
    ("LogSigmoid", lambda lib: lib.LogSigmoid(), X3((3, 4)), 1),
    ("Softsign", lambda lib: lib.Softsign(), X3((3, 4)), 1),
    ("GLU", lambda lib: lib.GLU(1), X((3, 4, 2)), 1),
    # conv: float32 scale 10, each output sums up to 12 products
    ("Conv1d", lambda lib: lib.Conv1d(4, 6, 3, stride=2, padding=1, groups=2), X((2, 4, 9)), 10),
    ("Conv1d-same-reflect", lambda lib: lib.Conv1d(3, 2, 4, padding="same", padding_mode="reflect"), X((2, 3, 7)), 10),
    ("Conv3d", lambda lib: lib.Conv3d(2, 4, (2, 3, 2), stride=(1, 2, 1), padding=1, bias=False), X((2, 2, 4, 5, 3)), 10),
    ("Conv3d-dilated-replicate", lambda lib: lib.Conv3d(2, 2, 2, dilation=(2, 1, 1), padding=1,
                                                        padding_mode="replicate"), X((1, 2, 4, 3, 3)), 10),
    ("Unfold", lambda lib: lib.Unfold((2, 3), padding=1, stride=(1, 2)), X((2, 3, 4, 5)), 1),
    ("Fold", lambda lib: lib.Fold((4, 5), 2), X((2, 8, 12)), 1),
    ("PixelShuffle", lambda lib: lib.PixelShuffle(2), X((2, 8, 3, 2)), 1),
    ("PixelUnshuffle", lambda lib: lib.PixelUnshuffle(2), X((2, 2, 4, 6)), 1),
    ("ZeroPad2d", lambda lib: lib.ZeroPad2d((1, 2, 0, 3)), X((2, 3, 4, 4)), 1),
    ("ConstantPad2d", lambda lib: lib.ConstantPad2d(1, 2.5), X((3, 4, 4)), 1),
    ("ReflectionPad2d", lambda lib: lib.ReflectionPad2d(2), X((2, 3, 4, 5)), 1),
    ("ReplicationPad2d", lambda lib: lib.ReplicationPad2d((1, 0, 2, 1)), X((2, 3, 4, 5)), 1),
    ("Unflatten", lambda lib: lib.Unflatten(1, (2, 3)), X((4, 6, 2)), 1),
    ("InstanceNorm2d", lambda lib: lib.InstanceNorm2d(3), X((2, 3, 4, 5)), 4),  # 4: the norms' cancellation
    ("InstanceNorm2d-affine-unbatched", lambda lib: lib.InstanceNorm2d(3, affine=True), X((3, 4, 5)), 4),
    ("InstanceNorm1d-affine", lambda lib: lib.InstanceNorm1d(3, affine=True, eps=1e-3), X((2, 3, 6)), 4),
    ("InstanceNorm3d", lambda lib: lib.InstanceNorm3d(2, affine=True), X((2, 2, 3, 2, 4)), 4),
]


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,make,x,scale", NEW_LAYERS, ids=[c[0] for c in NEW_LAYERS])
def test_new_layers_match_torch(name, make, x, scale, dtype):
    ours, theirs = make(nn), randomize(make(torch.nn))
    assert repr(ours) == repr(theirs)
    parity(ours, theirs, [x], dtype, scale if dtype == np.float32 or name == "Hardsigmoid" else 1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_instance_norm_running_stats_train_then_eval_match_torch(dtype):
    """track_running_stats: train steps update the buffers as torch (keys and values, and
    num_batches_tracked stays 0 as in torch's InstanceNorm), eval then normalises with them."""
    make = lambda lib: lib.InstanceNorm2d(3, affine=True, momentum=0.3, track_running_stats=True)  # noqa: E731
    ours, theirs = make(nn), randomize(make(torch.nn))
    assert repr(ours) == repr(theirs)
    for step in range(2):
        parity(ours, theirs, [X((2, 3, 4, 4)) + step], dtype, scale=4)
    for key, v in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[key].numpy(), v.numpy(), **tol(dtype), err_msg=key)
    ours.eval(), theirs.eval()
    parity(ours, theirs, [X((2, 3, 4, 4))], dtype, scale=4)


def test_dropout_channel_layers():
    for name in ("Dropout1d", "Dropout2d", "Dropout3d"):
        ours, theirs = getattr(nn, name)(0.3), getattr(torch.nn, name)(0.3)
        assert repr(ours) == repr(theirs)
        x = tv.ones((2, 4) + (3,) * int(name[-2]))
        y = ours(x).numpy()
        assert ((y == 0) | np.isclose(y, 1 / 0.7)).all()
        assert ours.eval()(x) is x


def test_parameter_list_and_dict_keys_match_torch():
    shapes = [(2,), (3, 2)]
    ours = nn.ParameterList([nn.Parameter(np.zeros(s, dtype=np.float32)) for s in shapes])
    theirs = torch.nn.ParameterList([torch.nn.Parameter(torch.zeros(s)) for s in shapes])
    ours.append(tv.ones(4))  # a plain Tensor is wrapped in a Parameter, as torch
    theirs.append(torch.ones(4))
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in theirs.state_dict().items()]
    assert isinstance(ours[2], nn.Parameter) and ours[-1].requires_grad and len(ours) == 3
    holder = nn.Module()
    holder.scales = nn.ParameterDict({"a": nn.Parameter(np.ones(2)), "b": tv.zeros(3)})
    assert list(holder.state_dict()) == ["scales.a", "scales.b"]
    assert len(list(holder.parameters())) == 2 and "a" in holder.scales
    with pytest.raises(TypeError, match="ParameterList: expected a Parameter or Tensor, got list"):
        ours.append([1.0])
    with pytest.raises(IndexError, match="ParameterList: index 5 is out of range for length 3"):
        ours[5]


def test_new_layer_errors_are_named():
    with pytest.raises(ValueError, match=r"ZeroPad2d: padding must be an int or a tuple of 4 ints, got \(1, 2\)"):
        nn.ZeroPad2d((1, 2))
    with pytest.raises(ValueError, match=r"InstanceNorm2d: expected input with 3 channels \(dim 1\), got shape"):
        nn.InstanceNorm2d(3)(tv.zeros((2, 4, 3, 3)))
    with pytest.raises(ValueError, match=r"InstanceNorm2d: expected 3-d \(unbatched\) or 4-d input"):
        nn.InstanceNorm2d(3)(tv.zeros((2, 3)))
    with pytest.raises(ValueError, match="Conv3d: kernel_size must be an int or a tuple of 3 ints"):
        nn.Conv3d(2, 2, (1, 2))
    with pytest.raises(ValueError, match=r"Dropout2d: p must be in \[0, 1\], got 2"):
        nn.Dropout2d(2)


@pytest.mark.parametrize("name", ["Conv1d", "Conv3d", "Unfold", "Fold", "InstanceNorm1d", "InstanceNorm2d",
                                  "InstanceNorm3d", "Dropout1d", "Dropout2d", "Dropout3d", "PixelShuffle",
                                  "PixelUnshuffle", "ZeroPad2d", "ConstantPad2d", "ReflectionPad2d",
                                  "ReplicationPad2d", "Unflatten", "ParameterList", "ParameterDict", "PReLU",
                                  "LeakyReLU", "ELU", "ReLU6", "SELU", "Hardswish", "Hardsigmoid", "Mish", "Softplus",
                                  "GLU", "TransformerEncoderLayer", "TransformerDecoderLayer", "TransformerEncoder",
                                  "TransformerDecoder", "Transformer"])
def test_new_layer_signatures_are_torchs(name):
    """Constructor and forward parameters in torch's order (Hardtanh's deprecated min_value /
    max_value aliases are left out)."""
    import inspect

    ours, theirs = getattr(nn, name), getattr(torch.nn, name)
    assert list(inspect.signature(ours.__init__).parameters) == list(inspect.signature(theirs.__init__).parameters)
    if name not in ("ParameterList", "ParameterDict"):  # containers: no forward
        assert list(inspect.signature(ours.forward).parameters) == list(inspect.signature(theirs.forward).parameters)
