"""The promptable segmenter (SAM's design): random-Fourier encoding, prompt encoder, two-way
attention block, mask decoder, the model, bad prompts.

Oracles: the same formulas in PyTorch on the same weights (the encoding, the two-way block with
torch's multi-head attention), float64 finite differences for the mask decoder.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import tinyvision as tv
from tinyvision.models import create_model
from tinyvision.models.sam import MaskDecoder, PositionEmbeddingRandom, PromptEncoder, TwoWayAttentionBlock
from tests.helpers import DTYPES, tol


def torch_fourier(coords, g):
    phase = 2 * math.pi * ((2 * coords - 1) @ g)
    return torch.cat([phase.sin(), phase.cos()], -1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_random_fourier_encoding(dtype):
    pe = PositionEmbeddingRandom(8)
    g = torch.tensor(pe.positional_encoding_gaussian_matrix.numpy(), dtype=torch.float64)
    coords = np.random.default_rng(0).random((3, 5, 2)).astype(dtype)
    np.testing.assert_allclose(pe.encode(tv.tensor(coords)).numpy(), torch_fourier(torch.tensor(coords).double(), g).numpy(),
                               **tol(dtype, 10))
    grid = pe.grid(2, 3, dtype).numpy()                 # cell (row 1, col 2) has centre x = 2.5 / 3, y = 1.5 / 2
    np.testing.assert_allclose(grid[:, 1, 2], torch_fourier(torch.tensor([2.5 / 3, 0.75], dtype=torch.float64), g).numpy(), **tol(dtype, 10))


def test_prompt_encoder_tokens_and_bad_prompts():
    tv.manual_seed(0)
    enc = PromptEncoder(16, image_size=64)
    coords, labels = np.array([[[10.0, 20.0], [5.0, 6.0]]]), np.array([[1, 0]])
    tokens = enc((coords, labels)).detach().numpy()
    assert tokens.shape == (1, 3, 16)                    # two clicks + one padding token
    expect = enc.pe_layer.encode(tv.tensor((coords + 0.5) / 64)).numpy()
    np.testing.assert_allclose(tokens[0, 0], expect[0, 0] + enc.point_embeddings[1].weight.detach().numpy()[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tokens[0, 1], expect[0, 1] + enc.point_embeddings[0].weight.detach().numpy()[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tokens[0, 2], enc.not_a_point_embed.weight.detach().numpy()[0], rtol=1e-6)
    boxes = enc(boxes=np.array([[4.0, 8.0, 30.0, 40.0]])).detach().numpy()
    corner = enc.pe_layer.encode(tv.tensor(np.array([[30.5, 40.5]]) / 64)).numpy()[0]
    np.testing.assert_allclose(boxes[0, 1], corner + enc.point_embeddings[3].weight.detach().numpy()[0], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"point: \[70.0, 3.0\] lies outside the 64x64 image"):
        enc((np.array([[[70.0, 3.0]]]), np.array([[1]])))
    with pytest.raises(ValueError, match="box corner"):
        enc(boxes=np.array([[-2.0, 0.0, 10.0, 10.0]]))


def torch_mha(p, prefix, q, k, v, heads):
    """torch's multi-head attention (batch first) with the weights of ``prefix``."""
    out = TF.multi_head_attention_forward(
        q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1), q.shape[-1], heads, p[prefix + "in_proj_weight"],
        p[prefix + "in_proj_bias"], None, None, False, 0.0, p[prefix + "out_proj.weight"], p[prefix + "out_proj.bias"],
        training=False, need_weights=False)[0]
    return out.transpose(0, 1)


@pytest.mark.parametrize("skip_pe", [True, False])
def test_two_way_block_matches_torch(skip_pe):
    tv.manual_seed(1)
    block = TwoWayAttentionBlock(8, 2, 16, skip_first_layer_pe=skip_pe).double()
    p = {k: torch.tensor(v.numpy()) for k, v in block.state_dict().items()}
    rng = np.random.default_rng(2)
    q, k, qpe, kpe = (rng.standard_normal(s) for s in ((2, 3, 8), (2, 6, 8), (2, 3, 8), (2, 6, 8)))
    oq, ok = block(*(tv.tensor(a) for a in (q, k, qpe, kpe)))
    tq, tk, tqpe, tkpe = (torch.tensor(a) for a in (q, k, qpe, kpe))
    ln = lambda x, n: TF.layer_norm(x, (8,), p[n + ".weight"], p[n + ".bias"])
    mlp = lambda x: TF.linear(TF.relu(TF.linear(x, p["mlp.layers.0.weight"], p["mlp.layers.0.bias"])),
                              p["mlp.layers.1.weight"], p["mlp.layers.1.bias"])
    tq = torch_mha(p, "self_attn.", tq, tq, tq, 2) if skip_pe else tq + torch_mha(p, "self_attn.", tq + tqpe, tq + tqpe, tq, 2)
    tq = ln(tq, "norm1")
    tq = ln(tq + torch_mha(p, "cross_attn_token_to_image.", tq + tqpe, tk + tkpe, tk, 2), "norm2")
    tq = ln(tq + mlp(tq), "norm3")
    tk = ln(tk + torch_mha(p, "cross_attn_image_to_token.", tk + tkpe, tq + tqpe, tq, 2), "norm4")
    np.testing.assert_allclose(oq.detach().numpy(), tq.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ok.detach().numpy(), tk.numpy(), rtol=1e-10, atol=1e-12)


def test_mask_decoder_gradcheck():
    tv.manual_seed(2)
    decoder = MaskDecoder(16, depth=1, heads=2, mlp_dim=16).double()
    rng = np.random.default_rng(3)
    image, pe, sparse = (tv.tensor(rng.standard_normal(s), requires_grad=True) for s in ((1, 16, 2, 2), (16, 2, 2), (1, 2, 16)))
    dense = tv.tensor(rng.standard_normal((1, 16, 1, 1)))

    def both(i, p, s):    # masks and IoU predictions in one output, so one check covers both heads
        masks, iou = decoder(i, p, s, dense)
        return tv.cat([masks.flatten(), iou.flatten()])

    tv.gradcheck(both, [image, pe, sparse], mode="random", n_directions=3)


def test_prompt_segmenter_outputs():
    tv.manual_seed(0)
    model = create_model("sam_resnet18", embed_dim=32, mask_decoder_depth=1)
    x = tv.tensor(np.random.default_rng(0).random((2, 3, 64, 64)).astype(np.float32))
    masks, iou = model(x, points=(np.array([[[10.0, 20.0]], [[30.0, 40.0]]]), np.array([[1], [1]])))
    assert tuple(masks.shape) == (2, 3, 64, 64) and tuple(iou.shape) == (2, 3)
    masks, iou = model(x, boxes=np.array([[5.0, 5.0, 30.0, 30.0], [10.0, 10.0, 50.0, 40.0]]), multimask_output=False)
    assert tuple(masks.shape) == (2, 1, 64, 64) and tuple(iou.shape) == (2, 1)
    with pytest.raises(ValueError, match="must be 64x64"):
        model(tv.zeros(1, 3, 32, 32), boxes=np.array([[1.0, 1.0, 5.0, 5.0]]))


def test_clicks_and_mask_iou():
    from tinyvision.train.setpred import click_inside, mask_iou

    mask = np.zeros((9, 9), bool)
    mask[2:7, 1:6] = True                                   # a 5x5 square: its deepest pixel is its centre
    assert click_inside(mask) == (3.0, 4.0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        x, y = click_inside(mask, rng)
        assert mask[int(y), int(x)]
    with pytest.raises(ValueError, match="empty"):
        click_inside(np.zeros((3, 3), bool))
    other = np.zeros((9, 9), bool)
    other[2:7, 3:8] = True                                  # overlaps 15 of 35 pixels
    np.testing.assert_allclose(mask_iou(mask, other), 15 / 35)
    assert mask_iou(np.zeros((2, 2), bool), np.zeros((2, 2), bool)) == 1.0


def test_predict_with_a_point(tmp_path, monkeypatch, capsys):
    import argparse

    from PIL import Image

    from tinyvision.train.tasks import get_task

    tv.manual_seed(0)
    model = create_model("sam_resnet18", embed_dim=32, mask_decoder_depth=1)
    Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)).save(tmp_path / "scene.png")
    monkeypatch.chdir(tmp_path)
    config = {"image_size": 64}
    args = argparse.Namespace(image=str(tmp_path / "scene.png"), point="20,30", topk=5)
    task = get_task("prompt")
    task.predict(model, config, args)
    assert "predicted IoU" in capsys.readouterr().out and (tmp_path / "scene_prompt.png").exists()
    for point, message in (("70,3", "outside the 64x64 image"), ("3", "expected two numbers")):
        with pytest.raises(SystemExit, match=message):
            task.predict(model, config, argparse.Namespace(image=str(tmp_path / "scene.png"), point=point, topk=5))
