"""nn/transformer.py against torch.nn on the same weights: outputs, input gradients and every
parameter gradient, float32 and float64, post-norm and norm_first, relu and gelu, batch_first
or not, masks (causal, float, bool, key padding), train mode with dropout 0 and eval mode;
float64 finite differences on a small layer; keys, repr, masks and errors.

float32 tolerances are scaled by 20: a layer chains two attentions' softmax sums, LayerNorms
and two matmuls, and the gradient goes back through all of them."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tinyvision as tv
import tinyvision.nn as nn
from tests.helpers import DTYPES
from tests.test_layers import X, parity, randomize

E, H, FF = 8, 2, 12
S, T, N = 5, 4, 2


def scale(dtype) -> float:
    return 20.0 if dtype == np.float32 else 1.0


def padding(n: int, length: int) -> np.ndarray:
    """(n, length) key padding masks: the last key of sample 0 is padding."""
    m = np.zeros((n, length), dtype=bool)
    m[0, -1] = True
    return m


def causal_bool(size: int) -> np.ndarray:
    return np.triu(np.ones((size, size), dtype=bool), k=1)


def as_lib(lib, a):
    """A mask (numpy) as a tensor of ``lib`` (tinyvision or torch)."""
    return None if a is None else (torch.tensor(a) if lib is torch.nn else tv.tensor(a))


MODES = [(np.float32, True), (np.float64, True), (np.float64, False)]  # eval once: the same arithmetic


def shape(batch_first: bool, length: int) -> tuple:
    return (N, length, E) if batch_first else (length, N, E)


def layer_parity(name: str, kwargs: dict, masks: dict, arrays: list, dtype, train: bool) -> None:
    """Layer ``name`` of both libraries with dropout 0, on the same weights, inputs and masks
    (float masks cast to ``dtype``; bools such as is_causal passed as they are)."""
    make = lambda lib: getattr(lib, name)(E, H, FF, dropout=0.0, **kwargs)  # noqa: E731
    ours, theirs = make(nn), randomize(make(torch.nn))
    ours.train(train), theirs.train(train)
    masks = {k: v.astype(dtype) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v
             for k, v in masks.items()}

    def call(m, *xs):
        lib = torch.nn if isinstance(m, torch.nn.Module) else nn
        return m(*xs, **{k: v if isinstance(v, bool) else as_lib(lib, v) for k, v in masks.items()})

    parity(ours, theirs, arrays, dtype, scale(dtype), call)


ENCODER_LAYER = [  # (id, kwargs, masks)
    ("post-relu", dict(), dict()),
    ("post-gelu-batchfirst-masks", dict(activation="gelu", batch_first=True),
     dict(src_mask=causal_bool(S), src_key_padding_mask=padding(N, S))),
    ("prenorm-float-mask", dict(norm_first=True), dict(src_mask=np.triu(np.full((S, S), -np.inf), 1))),
    ("prenorm-nobias-eps", dict(norm_first=True, bias=False, layer_norm_eps=1e-3, batch_first=True),
     dict(src_key_padding_mask=padding(N, S))),
]


@pytest.mark.parametrize("dtype, train", MODES, ids=["float32-train", "float64-train", "float64-eval"])
@pytest.mark.parametrize("case", ENCODER_LAYER, ids=[c[0] for c in ENCODER_LAYER])
def test_encoder_layer_matches_torch(case, dtype, train):
    _, kwargs, masks = case
    bf = kwargs.get("batch_first", False)
    layer_parity("TransformerEncoderLayer", kwargs, masks, [X(shape(bf, S))], dtype, train)


DECODER_LAYER = [
    ("post-relu", dict(), dict()),
    ("post-gelu-batchfirst-all-masks", dict(activation="gelu", batch_first=True),
     dict(tgt_mask=causal_bool(T), memory_mask=np.zeros((T, S), dtype=bool),
          tgt_key_padding_mask=padding(N, T), memory_key_padding_mask=padding(N, S))),
    ("prenorm-causal-hint", dict(norm_first=True), dict(tgt_mask=causal_bool(T), tgt_is_causal=True)),
]


@pytest.mark.parametrize("dtype, train", MODES, ids=["float32-train", "float64-train", "float64-eval"])
@pytest.mark.parametrize("case", DECODER_LAYER, ids=[c[0] for c in DECODER_LAYER])
def test_decoder_layer_matches_torch(case, dtype, train):
    _, kwargs, masks = case
    bf = kwargs.get("batch_first", False)
    layer_parity("TransformerDecoderLayer", kwargs, masks, [X(shape(bf, T)), X(shape(bf, S))], dtype, train)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_matches_torch(norm_first, dtype):
    """The whole encoder-decoder (2 + 2 layers, both final norms) with every mask at once."""
    make = lambda lib: lib.Transformer(E, H, 2, 2, FF, dropout=0.0, batch_first=True,  # noqa: E731
                                       norm_first=norm_first)
    ours, theirs = make(nn), randomize(make(torch.nn))
    masks = dict(tgt_mask=causal_bool(T), src_key_padding_mask=padding(N, S),
                 memory_key_padding_mask=padding(N, S), tgt_key_padding_mask=padding(N, T))

    def call(m, src, tgt):
        lib = torch.nn if isinstance(m, torch.nn.Module) else nn
        return m(src, tgt, **{k: as_lib(lib, v) for k, v in masks.items()})

    parity(ours, theirs, [X((N, S, E)), X((N, T, E))], dtype, scale(dtype), call)


@pytest.mark.parametrize("dtype", DTYPES)
def test_encoder_stack_unbatched_with_norm_and_causal_mask(dtype):
    make = lambda lib: lib.TransformerEncoder(  # noqa: E731
        lib.TransformerEncoderLayer(E, H, FF, dropout=0.0), 2, norm=lib.LayerNorm(E))
    ours, theirs = make(nn), randomize(make(torch.nn))
    ours.eval(), theirs.eval()

    def call(m, x):
        lib = torch.nn if isinstance(m, torch.nn.Module) else nn
        mask = lib.Transformer.generate_square_subsequent_mask(S, dtype=torch.float64 if lib is torch.nn else None)
        return m(x, mask=mask.to(x.dtype) if lib is torch.nn else mask.to(x.dtype), is_causal=True)

    parity(ours, theirs, [X((S, E))], dtype, scale(dtype), call)


def test_default_keys_init_and_repr_match_torch():
    tv.manual_seed(0)
    ours, theirs = nn.Transformer(E, H, 1, 1, FF), torch.nn.Transformer(E, H, 1, 1, FF)
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in theirs.state_dict().items()]
    for (k, v), (_, vt) in zip(ours.state_dict().items(), theirs.state_dict().items()):
        v, vt = v.detach().numpy(), vt.numpy()
        if v.ndim > 1:  # Xavier-uniform on every matrix: bound sqrt(6 / (fan_in + fan_out))
            bound = np.sqrt(6 / sum(v.shape))
            assert np.abs(v).max() <= bound and np.abs(v).max() > 0.5 * bound, k
        elif k.endswith("norm1.weight") or k.endswith("norm.weight"):
            np.testing.assert_array_equal(v, vt)
    assert repr(ours).replace("NonDynamicallyQuantizable", "") == \
        repr(theirs).replace("NonDynamicallyQuantizable", "")
    # the layers of a stack are independent copies
    enc = ours.encoder
    a, b = nn.TransformerEncoder(enc.layers[0], 2).layers
    assert a.linear1.weight is not b.linear1.weight
    np.testing.assert_array_equal(a.linear1.weight.detach().numpy(), b.linear1.weight.detach().numpy())


def test_generate_square_subsequent_mask_matches_torch():
    np.testing.assert_array_equal(nn.Transformer.generate_square_subsequent_mask(4).numpy(),
                                  torch.nn.Transformer.generate_square_subsequent_mask(4).numpy())


def test_gradients_by_finite_differences():
    """float64 central differences through a pre-norm decoder layer (both attentions, masks)."""
    m = nn.TransformerDecoderLayer(4, 2, 6, dropout=0.0, norm_first=True, activation="gelu").double()
    with tv.no_grad():
        for p in m.parameters():
            p.data[...] = X(p.shape)
    tgt, mem = tv.tensor(X((3, 2, 4)), requires_grad=True), tv.tensor(X((4, 2, 4)), requires_grad=True)
    mask = tv.tensor(causal_bool(3))
    fn = lambda t, s, *params: m(t, s, tgt_mask=mask)  # noqa: E731
    assert tv.gradcheck(fn, [tgt, mem] + list(m.parameters()), mode="random", n_directions=4)


def test_dropout_only_in_training():
    m = nn.TransformerEncoderLayer(E, H, FF, dropout=0.5)
    x = tv.tensor(X((S, N, E)).astype(np.float32))
    tv.manual_seed(0)
    a, b = m(x).detach().numpy(), m(x).detach().numpy()
    assert not np.allclose(a, b)
    m.eval()
    np.testing.assert_array_equal(m(x).detach().numpy(), m(x).detach().numpy())


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="activation should be 'relu' or 'gelu'.*'tanh'"):
        nn.TransformerEncoderLayer(E, H, activation="tanh")
    m = nn.Transformer(E, H, 1, 1, FF)
    with pytest.raises(ValueError, match=r"batch number of src and tgt must be equal.*\(5, 2, 8\).*\(4, 3, 8\)"):
        m(tv.zeros((S, 2, E)), tv.zeros((T, 3, E)))
    with pytest.raises(ValueError, match=r"feature number of src and tgt must be equal to d_model \(8\)"):
        m(tv.zeros((S, N, E)), tv.zeros((T, N, 6)))
