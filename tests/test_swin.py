"""Swin's pieces on their own: window partition, the relative position index, the shifted-window
mask (each against a brute-force construction written from the definition), window attention
under finite differences, stochastic depth, and the errors for sizes that do not fit.
(The whole model against timm: tests/test_models_transformers.py.)"""
from __future__ import annotations

import numpy as np
import pytest

import tinyvision as tv
from tinyvision.models import create_model
from tinyvision.models.swin import (SwinTransformer, WindowAttention, relative_position_index, shifted_window_mask,
                                    window_partition, window_reverse)
from tinyvision.models.vit import drop_path


def test_window_partition_cuts_row_major_squares_and_reverse_undoes_it() -> None:
    x = np.random.default_rng(0).standard_normal((2, 8, 12, 3))
    windows = window_partition(tv.tensor(x), 4).numpy()
    assert windows.shape == (2 * 2 * 3, 16, 3)
    # window 4 of image 1 = row 1, column 1 of its windows: pixels [4:8, 4:8], row by row
    np.testing.assert_array_equal(windows[6 + 4], x[1, 4:8, 4:8].reshape(16, 3))
    np.testing.assert_array_equal(window_reverse(tv.tensor(windows), 4, 8, 12).numpy(), x)


@pytest.mark.parametrize("m", [2, 3, 7])
def test_relative_position_index_gives_one_row_per_offset(m: int) -> None:
    index = relative_position_index(m)
    pos = [(y, x) for y in range(m) for x in range(m)]
    offsets = {}
    for i, (yi, xi) in enumerate(pos):
        for j, (yj, xj) in enumerate(pos):
            offsets.setdefault((yi - yj, xi - xj), set()).add(int(index[i, j]))
    assert all(len(rows) == 1 for rows in offsets.values())         # an offset has one row...
    assert len({next(iter(r)) for r in offsets.values()}) == len(offsets) == (2 * m - 1) ** 2  # ...of its own
    assert index.min() == 0 and index.max() == (2 * m - 1) ** 2 - 1


@pytest.mark.parametrize("size, m, s", [(8, 4, 2), (14, 7, 3), (12, 4, 2)])
def test_shifted_window_mask_separates_tokens_that_the_roll_wrapped(size: int, m: int, s: int) -> None:
    """After rolling by -s, the token at (y, x) came from ((y + s) mod H, (x + s) mod W); it
    wrapped around an axis iff y + s >= H. Two tokens of one window may attend iff they wrapped
    around the same axes."""
    mask = shifted_window_mask(size, size, m, s)
    ys, xs = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    wrapped = np.stack([ys + s >= size, xs + s >= size], -1).astype(float)  # (H, W, 2)
    w = window_partition(tv.tensor(wrapped[None]), m).numpy()                # (windows, M*M, 2)
    same = (w[:, :, None, :] == w[:, None, :, :]).all(-1)
    np.testing.assert_array_equal(mask, np.where(same, 0.0, -100.0))
    assert (mask[0] == 0).all() and (mask[-1] != 0).any()  # the first window never wrapped, the last did


def test_window_attention_gradients_match_finite_differences() -> None:
    tv.manual_seed(0)
    attn = WindowAttention(dim=4, num_heads=2, window_size=2).to(np.float64)
    x = tv.tensor(np.random.default_rng(1).standard_normal((4, 4, 4)), requires_grad=True)  # 2 images x 2 windows
    mask = tv.tensor(np.array([np.zeros((4, 4)), shifted_window_mask(2, 4, 2, 1)[1]]))
    table = attn.relative_position_bias_table
    assert tv.gradcheck(lambda x, t: attn(x, mask=mask), (x, table))


def test_drop_path_drops_whole_samples_and_keeps_the_mean() -> None:
    x = tv.ones(4000, 3, 2)
    tv.manual_seed(0)
    y = drop_path(x, 0.25, training=True).numpy()
    per_sample = y.reshape(4000, -1)
    np.testing.assert_allclose(np.unique(per_sample), [0.0, 1 / 0.75], rtol=1e-6)
    assert (per_sample == per_sample[:, :1]).all()  # one draw per sample
    assert abs(per_sample.mean() - 1.0) < 0.05
    assert drop_path(x, 0.25, training=False) is x
    with pytest.raises(ValueError, match="p must be in"):
        drop_path(x, 1.0, training=True)


def test_swin_small_configuration_for_32x32_trains_a_step() -> None:
    model = create_model("swin_nano_patch2_window4_32", num_classes=3)
    out = model(tv.randn(2, 3, 32, 32))
    assert out.shape == (2, 3)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_sizes_that_do_not_fit_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="img_size 30 is not a multiple of patch_size 4"):
        SwinTransformer(img_size=30, patch_size=4, embed_dim=8, depths=(1,), num_heads=(1,))
    with pytest.raises(ValueError, match="12x12 token grid is not a multiple of window_size 5"):
        SwinTransformer(img_size=48, patch_size=4, window_size=5, embed_dim=8, depths=(1,), num_heads=(1,))
    with pytest.raises(ValueError, match="patch merging needs an even grid"):
        SwinTransformer(img_size=36, patch_size=4, window_size=3, embed_dim=8, depths=(1, 1), num_heads=(1, 1))
    with pytest.raises(ValueError, match="depths .* and num_heads"):
        SwinTransformer(img_size=32, depths=(1, 1), num_heads=(1,))
    model = SwinTransformer(img_size=32, patch_size=4, window_size=4, embed_dim=8, depths=(1,), num_heads=(1,))
    with pytest.raises(ValueError, match="expected 32x32 images"):
        model(tv.randn(1, 3, 28, 28))


def test_xavier_weight_init_scales_with_the_width() -> None:
    """timm's trunc_normal(0.02) whatever the width, or Xavier-uniform: std sqrt(2 / (fan_in + fan_out))."""
    tv.manual_seed(0)
    default = SwinTransformer(img_size=32, patch_size=4, window_size=4, embed_dim=64, depths=(1,), num_heads=(2,))
    xavier = SwinTransformer(img_size=32, patch_size=4, window_size=4, embed_dim=64, depths=(1,), num_heads=(2,),
                             weight_init="xavier")
    fc1 = (default.layers[0].blocks[0].mlp.fc1.weight, xavier.layers[0].blocks[0].mlp.fc1.weight)  # (256, 64)
    assert abs(fc1[0].detach().numpy().std() - 0.02) < 0.002
    assert abs(fc1[1].detach().numpy().std() - (2 / (64 + 256)) ** 0.5) < 0.005
    with pytest.raises(ValueError, match="weight_init must be one of"):
        SwinTransformer(img_size=32, patch_size=4, window_size=4, embed_dim=8, depths=(1,), num_heads=(1,),
                        weight_init="jax")
