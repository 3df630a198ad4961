"""MAE's pieces against the paper's procedure written in torch on the same noise (random
masking, patchify, the normalised-pixel loss), the decoder's unshuffle checked token by token,
finite differences through the whole model, the encoder loading into a ViT, bad mask ratios."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tinyvision as tv
from tinyvision import nn
from tinyvision.models import create_model
from tinyvision.models.mae import (MaskedAutoencoderViT, patchify, random_masking, sincos_pos_embed_2d,
                                   unpatchify)

RNG = np.random.default_rng(0)


def torch_random_masking(x: torch.Tensor, mask_ratio: float, noise: torch.Tensor):
    """The paper's code, step by step."""
    n, length, d = x.shape
    keep = int(length * (1 - mask_ratio))
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    x_kept = torch.gather(x, 1, ids_shuffle[:, :keep].unsqueeze(-1).repeat(1, 1, d))
    mask = torch.ones(n, length, dtype=x.dtype)
    mask[:, :keep] = 0
    return x_kept, torch.gather(mask, 1, ids_restore), ids_restore


@pytest.mark.parametrize("ratio", [0.75, 0.5, 0.1])
def test_random_masking_matches_the_papers_procedure(ratio: float) -> None:
    x, noise = RNG.standard_normal((3, 16, 5)), RNG.random((3, 16))
    ours_x = tv.tensor(x, requires_grad=True)
    kept, mask, restore = random_masking(ours_x, ratio, tv.tensor(noise))
    tx = torch.tensor(x, requires_grad=True)
    t_kept, t_mask, t_restore = torch_random_masking(tx, ratio, torch.tensor(noise))
    np.testing.assert_array_equal(kept.detach().numpy(), t_kept.detach().numpy())
    np.testing.assert_array_equal(mask.numpy(), t_mask.numpy())
    np.testing.assert_array_equal(restore.numpy(), t_restore.numpy())
    assert (mask.numpy().sum(1) == 16 - int(16 * (1 - ratio))).all()
    weights = RNG.standard_normal(kept.shape)
    (kept * tv.tensor(weights)).sum().backward()
    (t_kept * torch.tensor(weights)).sum().backward()
    np.testing.assert_array_equal(ours_x.grad.numpy(), tx.grad.numpy())


def test_patchify_is_the_papers_layout_and_unpatchify_inverts_it() -> None:
    imgs = RNG.standard_normal((2, 3, 8, 8))
    expected = torch.einsum("nchpwq->nhwpqc", torch.tensor(imgs).reshape(2, 3, 2, 4, 2, 4)).reshape(2, 4, 48)
    np.testing.assert_array_equal(patchify(tv.tensor(imgs), 4).numpy(), expected.numpy())
    np.testing.assert_array_equal(unpatchify(patchify(tv.tensor(imgs), 4), 4, 3).numpy(), imgs)


def test_sincos_positions_follow_the_formula() -> None:
    emb = sincos_pos_embed_2d(8, 3)
    assert emb.shape == (10, 8) and (emb[0] == 0).all()
    w = 1.0 / 10000 ** (np.arange(2) / 2)
    for t, (row, col) in enumerate((r, c) for r in range(3) for c in range(3)):
        np.testing.assert_allclose(emb[1 + t], np.concatenate([np.sin(col * w), np.cos(col * w),
                                                               np.sin(row * w), np.cos(row * w)]))


def tiny_mae(**kwargs) -> MaskedAutoencoderViT:
    tv.manual_seed(0)
    return MaskedAutoencoderViT(img_size=8, patch_size=4, embed_dim=8, depth=1, num_heads=2, decoder_embed_dim=8,
                                decoder_depth=1, decoder_num_heads=2, **kwargs).to(np.float64)


def test_loss_is_the_normalised_pixel_mse_on_hidden_patches_as_torch_computes_it() -> None:
    model = tiny_mae()
    imgs, noise = RNG.standard_normal((2, 3, 8, 8)), RNG.random((2, 4))
    loss, pred, mask = model(tv.tensor(imgs), 0.5, tv.tensor(noise))
    target = torch.einsum("nchpwq->nhwpqc", torch.tensor(imgs).reshape(2, 3, 2, 4, 2, 4)).reshape(2, 4, 48)
    target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6) ** 0.5
    per_patch = ((torch.tensor(pred.detach().numpy()) - target) ** 2).mean(-1)
    t_mask = torch.tensor(mask.numpy())
    np.testing.assert_allclose(loss.item(), ((per_patch * t_mask).sum() / t_mask.sum()).item(), rtol=1e-12)


def test_decoder_puts_visible_tokens_back_in_place_and_mask_tokens_elsewhere() -> None:
    model = tiny_mae()
    model.decoder_blocks, model.decoder_norm, model.decoder_pred = nn.Identity(), nn.Identity(), nn.Identity()
    model.decoder_pos_embed.data[...] = 0
    imgs, noise = tv.tensor(RNG.standard_normal((2, 3, 8, 8))), tv.tensor(RNG.random((2, 4)))
    latent, mask, restore = model.forward_encoder(imgs, 0.5, noise)
    out = model.forward_decoder(latent, restore).detach().numpy()          # (N, L, D_dec)
    projected = model.decoder_embed(latent).detach().numpy()[:, 1:]        # visible tokens, in kept order
    kept_order = np.argsort(noise.numpy(), axis=1)[:, :2]
    for n in range(2):
        for j, patch in enumerate(kept_order[n]):
            np.testing.assert_allclose(out[n, patch], projected[n, j])
        for patch in np.flatnonzero(mask.numpy()[n]):
            np.testing.assert_allclose(out[n, patch], model.mask_token.detach().numpy()[0, 0])


def test_mae_gradients_match_finite_differences() -> None:
    model = tiny_mae(norm_pix_loss=True)
    imgs, noise = tv.tensor(RNG.standard_normal((2, 3, 8, 8))), tv.tensor(RNG.random((2, 4)))
    params = [model.mask_token, model.blocks[0].attn.qkv.weight]  # a decoder and an encoder path
    assert tv.gradcheck(lambda *p: model(imgs, 0.5, noise)[0], params)


def test_encoder_loads_into_a_vit_for_fine_tuning() -> None:
    mae = create_model("mae_vit_nano_patch4_32")
    vit = create_model("vit_tiny_patch16_224", img_size=32, patch_size=4, embed_dim=96, depth=4, num_heads=3,
                       num_classes=3)
    missing, unexpected = vit.load_state_dict(mae.encoder_state_dict(), strict=False)
    assert sorted(missing) == ["head.bias", "head.weight"] and not unexpected
    x = tv.rand(2, 3, 32, 32)
    np.testing.assert_allclose(vit.forward_features(x).detach().numpy(), mae.forward_features(x).detach().numpy(),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.5, 1.5])
def test_mask_ratio_outside_the_open_interval_is_a_clear_error(ratio: float) -> None:
    with pytest.raises(ValueError, match=r"mask_ratio must be in \(0, 1\)"):
        random_masking(tv.zeros(1, 4, 2), ratio)
    with pytest.raises(ValueError, match=r"mask_ratio must be in \(0, 1\)"):
        create_model("mae_vit_nano_patch4_32", mask_ratio=ratio)
