"""interpolate (nearest, nearest-exact, linear, bilinear, bicubic, trilinear, area; antialiased
bilinear and bicubic),
pixel_shuffle, pixel_unshuffle vs PyTorch.

Tolerances from tests/helpers.tol (float64 ~1e-10 relative, float32 1e-5 / 1e-6): every output
is a sum of at most four weighted inputs, and a backward entry sums at most a few dozen terms.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyvision as tv
import tinyvision.nn.functional as F
from tests.helpers import DTYPES, check_against_torch


def randn(*shape, dtype=np.float64, seed=7):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def both_interpolate(**kw):
    return (lambda x: F.interpolate(x, **kw)), (lambda x: TF.interpolate(x, **kw))


CASES = [
    dict(size=(7, 9), mode="nearest"),
    dict(size=(2, 3), mode="nearest"),  # downsampling
    dict(size=(10, 12), mode="nearest"),  # exact doubling
    dict(scale_factor=1.7, mode="nearest"),  # coordinate map uses 1 / 1.7, not 5 / 8
    dict(scale_factor=(0.5, 3.0), mode="nearest"),
    dict(size=(7, 13), mode="bilinear", align_corners=False),
    dict(size=(3, 4), mode="bilinear", align_corners=False),
    dict(size=(1, 1), mode="bilinear", align_corners=True),
    dict(size=(11, 4), mode="bilinear", align_corners=True),
    dict(scale_factor=(0.6, 2.3), mode="bilinear", align_corners=False),
    dict(scale_factor=2.5, mode="bilinear", align_corners=True),
    dict(scale_factor=1.7, mode="bilinear", recompute_scale_factor=True),
    dict(scale_factor=(1.1, 2.0), mode="bilinear"),  # H: floor(5 * 1.1) = 5 rows, copied as is
    dict(scale_factor=(1.1, 0.9), mode="nearest"),
    dict(size=(7, 9), mode="nearest-exact"),
    dict(size=(2, 3), mode="nearest-exact"),
    dict(size=(10, 12), mode="nearest-exact"),
    dict(scale_factor=(1.19, 0.7), mode="nearest-exact"),  # H keeps 5 rows: (o + 0.5) / 1.19 is not o
    dict(size=(7, 13), mode="bicubic"),
    dict(size=(3, 4), mode="bicubic"),  # downsampling: taps reach past both edges, clamped
    dict(size=(11, 4), mode="bicubic", align_corners=True),
    dict(scale_factor=(0.6, 2.3), mode="bicubic"),
    dict(scale_factor=(1.1, 2.0), mode="bicubic"),  # H keeps 5 rows, resampled all the same
    dict(size=(3, 4), mode="area"),  # overlapping bins of 2, 3, 2 rows: weights 1/2, 1/3 and 0 taps
    dict(size=(7, 13), mode="area"),  # upsampling: one-sample bins
    dict(scale_factor=0.5, mode="area"),
]

ND_CASES = [  # (input shape, arguments): 1 and 3 spatial dims
    ((2, 3, 7), dict(size=5, mode="linear")),
    ((2, 3, 7), dict(scale_factor=2.3, mode="linear", align_corners=True)),
    ((2, 3, 7), dict(size=11, mode="nearest")),
    ((2, 3, 7), dict(scale_factor=1.7, mode="nearest-exact")),
    ((1, 2, 3, 4, 5), dict(size=(5, 3, 7), mode="trilinear", align_corners=True)),
    ((1, 2, 3, 4, 5), dict(scale_factor=(0.7, 1.5, 2.0), mode="trilinear")),
    ((1, 2, 3, 4, 5), dict(size=(6, 2, 9), mode="nearest")),
    ((1, 2, 3, 4, 5), dict(scale_factor=1.19, mode="nearest-exact")),
    ((2, 3, 7), dict(size=4, mode="area")),  # bins of 2, 3, 3, 2
    ((1, 2, 3, 4, 5), dict(size=(2, 3, 2), mode="area")),
]


def _scale(mode: str) -> float:
    """Tolerance scale: bicubic sums 16 products (two passes of four weights in [-0.11, 1]), so a
    float32 output near 0 carries the cancellation error of a few ulps of its terms."""
    return 4 if mode == "bicubic" else 1


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", CASES, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_interpolate_matches_torch(dtype, kw):
    check_against_torch(*both_interpolate(**kw), [randn(2, 3, 5, 6, dtype=dtype)], scale=_scale(kw["mode"]))


def test_bicubic_same_size_forward_matches_torch_backward_is_the_true_gradient():
    """scale_factor 1.1 on 5x6 gives 5x6 again. PyTorch's bicubic forward still resamples (we
    match it), but its backward then copies the gradient through as if nothing had moved, so
    torch.autograd.gradcheck fails on PyTorch's own op here. Our backward is checked by finite
    differences instead."""
    kw = dict(scale_factor=(1.1, 1.1), mode="bicubic")
    check_against_torch(*both_interpolate(**kw), [randn(2, 3, 5, 6)], requires_grad=[False])
    assert tv.gradcheck(lambda x: F.interpolate(x, **kw), [tv.tensor(randn(1, 2, 5, 6), requires_grad=True)])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,kw", ND_CASES, ids=lambda c: str(c))
def test_interpolate_1d_and_3d_match_torch(dtype, shape, kw):
    check_against_torch(*both_interpolate(**kw), [randn(*shape, dtype=dtype)])


def test_nearest_rounds_like_torch_float32():
    """14 -> 20: o * float32(0.7) for o = 10 is 6.99999988, which float32 rounds to 7.0, so
    torch picks source 7 there, where exact (or float64) arithmetic picks 6."""
    check_against_torch(*both_interpolate(size=(20, 20), mode="nearest"), [randn(1, 1, 14, 14)])


@settings(max_examples=30)
@given(h=st.integers(1, 7), w=st.integers(1, 7), out=st.tuples(st.integers(1, 12), st.integers(1, 12)),
       scale=st.tuples(st.floats(0.3, 3.5), st.floats(0.3, 3.5)), use_scale=st.booleans(),
       mode=st.sampled_from(["nearest", "nearest-exact", "area", "bilinear-false", "bilinear-true",
                             "bicubic-false", "bicubic-true"]),
       dtype=st.sampled_from(DTYPES))
def test_interpolate_over_shapes(h, w, out, scale, use_scale, mode, dtype):
    if use_scale and min(int(h * scale[0]), int(w * scale[1])) < 1:
        scale = (max(scale[0], 1.0), max(scale[1], 1.0))
    size_kw = dict(scale_factor=scale) if use_scale else dict(size=out)
    mode_kw = dict(mode=mode) if mode in ("nearest", "nearest-exact", "area") else \
        dict(mode=mode.split("-")[0], align_corners=mode.endswith("true"))
    # PyTorch's bicubic backward is wrong when neither size changes under a scale_factor
    # (test_bicubic_same_size_...): compare the forward only there
    same = use_scale and (int(h * scale[0]), int(w * scale[1])) == (h, w)
    check_against_torch(*both_interpolate(**size_kw, **mode_kw), [randn(2, 2, h, w, dtype=dtype)],
                        scale=_scale(mode_kw["mode"]),
                        requires_grad=[not (same and mode_kw["mode"] == "bicubic")])


def test_interpolate_gradcheck():
    for shape, kw in [((1, 2, 4, 5), kw) for kw in CASES] + ND_CASES:
        x = tv.tensor(randn(*shape), requires_grad=True)
        assert tv.gradcheck(lambda x: F.interpolate(x, **kw), [x])


# ----------------------------------------------------------------------------- antialias
AA_CASES = [
    dict(size=(3, 4)),  # shrink by 5/3 and 6/4: the stretched filter reads 3-4 samples per output
    dict(size=(2, 2)),
    dict(size=(7, 13)),  # growing: the plain filter, windows cut (and renormalised) at the edges
    dict(size=(3, 9)),  # shrink one axis, grow the other
    dict(scale_factor=(0.4, 0.7)),  # s = 1 / scale_factor, not in / out
    dict(scale_factor=(0.45, 1.7), recompute_scale_factor=True),
    dict(size=(2, 4), align_corners=True),  # s = (in - 1) / (out - 1); the centres do not move
    dict(size=(1, 3)),  # one output row averages the whole column
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
@pytest.mark.parametrize("kw", AA_CASES, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_interpolate_antialias_matches_torch(dtype, mode, kw):
    """Forward and backward against torch. Tolerance scale 4 in float32: torch rounds its
    normalised weights in another order (differences of a few ulps of outputs up to ~4)."""
    check_against_torch(*both_interpolate(mode=mode, antialias=True, **kw), [randn(2, 3, 5, 6, dtype=dtype)], scale=4)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_interpolate_antialias_shrinks_a_long_axis_like_torch(mode):
    """A 1/5 shrink of a 40-sample axis: 11 (bilinear) or 21 (bicubic) taps per output."""
    check_against_torch(*both_interpolate(size=(8, 3), mode=mode, antialias=True), [randn(1, 2, 40, 7)], scale=4)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_interpolate_antialias_same_size_axis_is_copied(mode):
    """scale_factor 1.1 keeps 5 rows: PyTorch's antialiased forward copies that axis (we match
    it), but its backward resamples it anyway, so there its gradient is not its forward's
    (torch.autograd.gradcheck fails on it); ours is checked by finite differences."""
    kw = dict(scale_factor=(1.1, 0.6), mode=mode, antialias=True)
    check_against_torch(*both_interpolate(**kw), [randn(2, 3, 5, 6)], requires_grad=[False])
    x = torch.tensor(randn(1, 1, 5, 6), requires_grad=True)
    assert not torch.autograd.gradcheck(lambda x: TF.interpolate(x, **kw), [x], raise_exception=False)
    assert tv.gradcheck(lambda x: F.interpolate(x, **kw), [tv.tensor(randn(1, 2, 5, 6), requires_grad=True)])


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_interpolate_antialias_one_output_column(mode):
    """PyTorch's antialiased forward repeats its first value down the column when the output is
    one column wide and the rows are resampled (torch 2.13 and 2.14). The same resize on the
    transposed image (one output row) is right there, so that is the oracle here."""
    x = randn(2, 3, 7, 6)
    theirs = TF.interpolate(torch.tensor(x), size=(10, 1), mode=mode, antialias=True).numpy()
    assert np.ptp(theirs[0, 0]) == 0  # the defect this test works around
    check_against_torch(lambda t: F.interpolate(t, size=(10, 1), mode=mode, antialias=True),
                        lambda t: TF.interpolate(t.transpose(2, 3), size=(1, 10), mode=mode,
                                                 antialias=True).transpose(2, 3), [x])


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 12), w=st.integers(2, 12), out=st.tuples(st.integers(1, 14), st.integers(2, 14)),
       mode=st.sampled_from(["bilinear", "bicubic"]), align_corners=st.booleans(), dtype=st.sampled_from(DTYPES))
def test_interpolate_antialias_over_shapes(h, w, out, mode, align_corners, dtype):
    """Random sizes, shrinking and growing. Excluded, each tested above: an output one column
    wide (torch's forward is wrong there) and an axis whose size does not change under a
    scale_factor (torch's backward is)."""
    check_against_torch(*both_interpolate(size=out, mode=mode, align_corners=align_corners, antialias=True),
                        [randn(2, 2, h, w, dtype=dtype)], scale=4)


def test_interpolate_antialias_gradcheck():
    for mode in ("bilinear", "bicubic"):
        for kw in AA_CASES + [dict(size=(10, 1))]:
            x = tv.tensor(randn(1, 2, 5, 6), requires_grad=True)
            assert tv.gradcheck(lambda x: F.interpolate(x, mode=mode, antialias=True, **kw), [x])


def test_interpolate_antialias_removes_aliasing():
    """What antialiasing is for: stripes (dark, dark, bright) shrunk by 3. The plain bilinear
    resize samples each output at input 3o + 1, always a dark stripe, so the picture turns black
    (aliasing); the antialiased one averages each output's whole footprint and gives the true
    mean brightness 1/3 (the triangle of width 2 x 3 weighs samples 1/3, 2/3, 1, 2/3, 1/3)."""
    stripes = np.tile(np.array([0.0, 0.0, 1.0]), 8)[None, None, None, :].repeat(3, axis=2)  # (1, 1, 3, 24)
    plain = F.interpolate(tv.tensor(stripes), size=(3, 8), mode="bilinear").numpy()
    smooth = F.interpolate(tv.tensor(stripes), size=(3, 8), mode="bilinear", antialias=True).numpy()
    assert np.ptp(plain) == 0 and plain.max() == 0  # every sample hits a dark stripe: the image goes black
    np.testing.assert_allclose(smooth[..., 1:-1], 1 / 3, atol=1e-12)  # the true mean brightness


def test_interpolate_antialias_errors():
    with pytest.raises(ValueError, match=r"antialias=True needs mode 'bilinear' or 'bicubic' and \(N, C, H, W\) "
                                         r"input, got mode='nearest'"):
        F.interpolate(tv.tensor(randn(1, 1, 4, 4)), size=2, mode="nearest", antialias=True)
    with pytest.raises(ValueError, match=r"got mode='linear' and shape \(1, 1, 4\)"):
        F.interpolate(tv.tensor(randn(1, 1, 4)), size=2, mode="linear", antialias=True)


# ----------------------------------------------------------------------------- pixel shuffle
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,r", [((2, 8, 3, 4), 2), ((18, 2, 3), 3), ((2, 2, 4, 1, 2), 2)])
def test_pixel_shuffle_and_unshuffle_match_torch(dtype, shape, r):
    check_against_torch(lambda x: F.pixel_shuffle(x, r), lambda x: TF.pixel_shuffle(x, r), [randn(*shape, dtype=dtype)])
    *batch, c, h, w = shape
    up = (*batch, c // (r * r), h * r, w * r)
    check_against_torch(lambda x: F.pixel_unshuffle(x, r), lambda x: TF.pixel_unshuffle(x, r), [randn(*up, dtype=dtype)])


def test_pixel_shuffle_gradcheck():
    assert tv.gradcheck(lambda x: F.pixel_shuffle(x, 2), [tv.tensor(randn(1, 8, 2, 3), requires_grad=True)])
    assert tv.gradcheck(lambda x: F.pixel_unshuffle(x, 2), [tv.tensor(randn(1, 2, 4, 6), requires_grad=True)])


# ----------------------------------------------------------------------------- bad input
def test_errors_name_the_argument_and_shapes():
    x = tv.tensor(randn(1, 2, 4, 4))
    with pytest.raises(ValueError, match=r"mode must be one of .*'trilinear'\), got 'lanczos'"):
        F.interpolate(x, size=3, mode="lanczos")
    with pytest.raises(ValueError, match=r"align_corners.*mode='area'"):
        F.interpolate(x, size=3, mode="area", align_corners=False)
    with pytest.raises(ValueError, match=r"mode 'bicubic' needs \(N, C, H, W\) input, got shape \(1, 2, 4, 4, 1\)"):
        F.interpolate(tv.tensor(randn(1, 2, 4, 4, 1)), size=3, mode="bicubic")
    with pytest.raises(ValueError, match=r"mode 'bilinear' needs \(N, C, H, W\) input, got shape \(2, 4, 4\)"):
        F.interpolate(tv.tensor(randn(2, 4, 4)), size=3, mode="bilinear")
    with pytest.raises(ValueError, match=r"mode 'nearest' needs 3-, 4- or 5-D .* got shape \(4, 4\)"):
        F.interpolate(tv.tensor(randn(4, 4)), size=3)
    with pytest.raises(ValueError, match=r"exactly one of size and scale_factor"):
        F.interpolate(x)
    with pytest.raises(ValueError, match=r"exactly one of size and scale_factor"):
        F.interpolate(x, size=3, scale_factor=2.0)
    with pytest.raises(ValueError, match=r"align_corners.*mode='nearest'"):
        F.interpolate(x, size=3, align_corners=True)
    with pytest.raises(ValueError, match=r"output size \(0, 0\).*\(1, 2, 4, 4\)"):
        F.interpolate(x, scale_factor=0.1)
    with pytest.raises(ValueError, match=r"size must be one value or 2 values for 4-D input \(N, C, H, W\), got \(1, 2, 3\)"):
        F.interpolate(x, size=(1, 2, 3))
    with pytest.raises(ValueError, match=r"scale_factor must be one value or 3 values for 5-D"):
        F.interpolate(tv.tensor(randn(1, 1, 2, 2, 2)), scale_factor=(2.0, 2.0))
    with pytest.raises(ValueError, match=r"pixel_shuffle.*r = 2.*\(1, 2, 4, 4\)"):
        F.pixel_shuffle(x, 2)
    with pytest.raises(ValueError, match=r"pixel_unshuffle.*r = 3.*\(1, 2, 4, 4\)"):
        F.pixel_unshuffle(x, 3)
