"""tinyvision.viz: the numbers behind the pictures (never the pictures themselves)."""
from __future__ import annotations

import argparse
import copy

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import tinyvision as tv
from tinyvision import nn, viz
from tinyvision.cli import main as cli_main
from tinyvision.models import create_model
from tinyvision.models.vgg import CONFIGS, make_layers
from tinyvision.viz import plot

from tests.helpers import DTYPES, tol


@pytest.fixture(scope="module")
def small_vit():
    tv.manual_seed(0)
    return create_model("vit_tiny_patch16_224", num_classes=5, img_size=32, patch_size=8, depth=2).eval()


def test_attention_rows_sum_to_one_for_every_temperature(small_vit) -> None:
    image = np.random.default_rng(0).standard_normal((3, 32, 32)).astype(np.float32)
    for t in (1, 10, 30):
        a = viz.attention_maps(small_vit, image, temperature=t)["attention"]
        assert a.shape == (2, 3, 17, 17)
        np.testing.assert_allclose(a.sum(-1), 1.0, rtol=1e-6)


def test_higher_temperature_flattens_attention(small_vit) -> None:
    image = np.random.default_rng(1).standard_normal((3, 32, 32)).astype(np.float32)
    maxes = [viz.attention_maps(small_vit, image, temperature=t)["attention"].max(-1).mean() for t in (1, 10, 30)]
    assert maxes[0] > maxes[1] > maxes[2] > 1 / 17


def test_temperature_one_equals_the_models_own_attention(small_vit) -> None:
    """The unfused Attention passes its softmax through `attn_map`: hook it and compare."""
    image = np.random.default_rng(2).standard_normal((3, 32, 32)).astype(np.float32)
    own = []
    for block in small_vit.blocks:
        block.attn.fused = False
    handles = [b.attn.attn_map.register_forward_hook(lambda m, i, o: own.append(o.numpy()[0])) for b in small_vit.blocks]
    try:
        with tv.no_grad():
            small_vit(tv.tensor(image[None]))
    finally:
        for h in handles:
            h.remove()
        for block in small_vit.blocks:
            block.attn.fused = True
    ours = viz.attention_maps(small_vit, image, temperature=1.0)["attention"]
    np.testing.assert_allclose(ours, np.stack(own), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_attention_equals_torch_multihead_attention_weights(small_vit, dtype) -> None:
    """torch's MultiheadAttention with the same in-projection, fed each block's attention input
    (the output of norm1), returns the same per-head weights."""
    model = copy.deepcopy(small_vit).to(dtype=dtype) if dtype == np.float64 else small_vit
    image = np.random.default_rng(4).standard_normal((3, 32, 32)).astype(dtype)
    inputs = []
    handles = [b.attn.register_forward_hook(lambda m, i, o: inputs.append(i[0].numpy())) for b in model.blocks]
    try:
        ours = viz.attention_maps(model, image)["attention"]
    finally:
        for h in handles:
            h.remove()
    for layer, (block, x) in enumerate(zip(model.blocks, inputs)):
        dim = x.shape[-1]
        mha = torch.nn.MultiheadAttention(dim, block.attn.num_heads, batch_first=True).to(torch.float64 if dtype == np.float64 else torch.float32)
        with torch.no_grad():
            mha.in_proj_weight.copy_(torch.tensor(block.attn.qkv.weight.detach().numpy()))
            mha.in_proj_bias.copy_(torch.tensor(block.attn.qkv.bias.detach().numpy()))
            xt = torch.tensor(x)
            _, weights = mha(xt, xt, xt, need_weights=True, average_attn_weights=False)
        np.testing.assert_allclose(ours[layer], weights[0].numpy(), **tol(dtype))


def test_attention_maps_rejects_bad_input(small_vit) -> None:
    with pytest.raises(ValueError, match="temperature"):
        viz.attention_maps(small_vit, np.zeros((3, 32, 32)), temperature=0)
    with pytest.raises(TypeError, match="VisionTransformer"):
        viz.attention_maps(nn.Sequential(nn.Conv2d(3, 1, 3)), np.zeros((3, 32, 32)))


def test_rollout_and_cls_grid() -> None:
    a = np.random.default_rng(0).random((3, 2, 5, 5))
    a /= a.sum(-1, keepdims=True)
    r = viz.attention_rollout(a)
    np.testing.assert_allclose(r.sum(-1), 1.0)
    assert viz.cls_attention_grid(r).shape == (2, 2)
    # one layer, one head, no residual: rollout is the attention itself
    np.testing.assert_allclose(viz.attention_rollout(a[:1, :1], residual=0.0), a[0, 0])


def test_rollout_by_hand() -> None:
    """Two layers, L = 2, worked on paper. Layer 1's two heads average to A1 = [[.8, .2], [.4, .6]];
    layer 2 is A2 = [[.5, .5], [.1, .9]]. Without the residual, rollout = A2 A1 (the later layer
    on the left) = [[.6, .4], [.44, .56]] (A1 A2 would be [[.42, .58], [.26, .74]]). With
    residual 0.5: A' = (A + I) / 2, so A1' = [[.9, .1], [.2, .8]], A2' = [[.75, .25], [.05, .95]]
    and A2' A1' = [[.725, .275], [.235, .765]]."""
    layer1 = np.array([[[1.0, 0.0], [0.0, 1.0]], [[0.6, 0.4], [0.8, 0.2]]])  # 2 heads
    layer2 = np.array([[[0.5, 0.5], [0.1, 0.9]]] * 2)  # the same in both heads
    attention = np.stack([layer1, layer2])  # (layers 2, heads 2, 2, 2)
    np.testing.assert_allclose(viz.attention_rollout(attention, residual=0.0), [[0.6, 0.4], [0.44, 0.56]])
    np.testing.assert_allclose(viz.attention_rollout(attention, residual=0.5), [[0.725, 0.275], [0.235, 0.765]])


def test_cls_grid_by_hand() -> None:
    """The class token's ROW (what [CLS] attends to), patches in row-major order: row 0 of a
    (5, 5) map = [.2 | .1 .2 .3 .2] -> [[.1, .2], [.3, .2]]; column 0 holds other numbers."""
    a = np.full((5, 5), 0.05)
    a[0] = [0.2, 0.1, 0.2, 0.3, 0.2]
    a[1:, 0] = [0.9, 0.8, 0.7, 0.6]  # reading the column instead would give these
    np.testing.assert_allclose(viz.cls_attention_grid(a), [[0.1, 0.2], [0.3, 0.2]])
    heads = np.stack([a, np.full((5, 5), 0.2)])  # heads are averaged first
    np.testing.assert_allclose(viz.cls_attention_grid(heads), [[0.15, 0.2], [0.25, 0.2]])


def test_position_embedding_similarity_is_a_cosine_matrix(small_vit) -> None:
    s = viz.position_embedding_similarity(small_vit)
    assert s.shape == (4, 4, 4, 4)
    flat = s.reshape(16, 16)
    np.testing.assert_allclose(np.diag(flat), 1.0, rtol=1e-6)
    np.testing.assert_allclose(flat, flat.T, atol=1e-12)
    pos = small_vit.pos_embed.detach().numpy()[0, 1:].astype(np.float64)
    expected = pos[1] @ pos[6] / np.linalg.norm(pos[1]) / np.linalg.norm(pos[6])
    np.testing.assert_allclose(s[0, 1, 1, 2], expected, rtol=1e-10)


# ---------------------------------------------------------------------- receptive fields
def _rf(rows, layer):
    return next(r for r in rows if r["layer"] == layer)


def test_notes_rule_conv_then_pool() -> None:
    """A KxK stride-1 conv then a PxP stride-2 pool sees (P+K-1)x(P+K-1)."""
    for k, p in ((3, 2), (5, 2), (3, 3)):
        net = nn.Sequential(nn.Conv2d(1, 2, k), nn.MaxPool2d(p, 2))
        rows = viz.receptive_field(net, (1, 32, 32))
        assert _rf(rows, "1")["size"] == (p + k - 1, p + k - 1)
        assert _rf(rows, "1")["jump"] == (2, 2)
        # unit 0's centre: the middle of the conv window, then of the pool window over it
        assert _rf(rows, "1")["start"] == ((k - 1) / 2 + (p - 1) / 2,) * 2
        assert viz.empirical_receptive_field(net, (1, 32, 32), "1") == (p + k - 1, p + k - 1)


# Known figures, computed by hand from the layer lists (r += (k_eff - 1) * j; j *= s):
# LeNet-5: C1 5 -> S2 6 -> C3 14 -> S4 16 -> C5 32 (the whole 32x32 input).
# VGG-11: 3, 4 | 8, 10 | 18, 26, 30 | 46, 62, 70 | 102, 134, 150.
# ResNet-18: stem 7 -> pool 11; layer1 43; layer2 99; layer3 211; layer4 435.
# dilated 3x3 stack with dilation 1, 2, 4: 3 -> 7 -> 15.
def _model(name):
    """The networks under test; for VGG-11 its feature stack only (the classifier has no
    spatial extent and 100M parameters that only slow the test down)."""
    return make_layers(CONFIGS["A"]) if name == "vgg11" else create_model(name, num_classes=10)


@pytest.mark.parametrize("name, size, expected", [
    ("lenet5", (1, 32, 32), {"c1": 5, "s2": 6, "c3.maps.0": 14, "s4": 16, "c5": 32}),
    ("vgg11", (3, 32, 32), {"0": 3, "2": 4, "5": 10, "10": 30, "15": 70, "20": 150}),
    ("resnet18", (3, 64, 64), {"conv1": 7, "maxpool": 11, "layer1.1.conv2": 43, "layer2.1.conv2": 99,
                               "layer3.1.conv2": 211, "layer4.1.conv2": 435}),
])
def test_receptive_fields_match_known_figures(name, size, expected) -> None:
    rows = viz.receptive_field(_model(name), size)
    for layer, r in expected.items():
        assert _rf(rows, layer)["size"] == (r, r), layer


def test_dilated_stack_receptive_field() -> None:
    net = nn.Sequential(nn.Conv2d(1, 1, 3, dilation=1, padding=1), nn.Conv2d(1, 1, 3, dilation=2, padding=2),
                        nn.Conv2d(1, 1, 3, dilation=4, padding=4))
    rows = viz.receptive_field(net, (1, 32, 32))
    assert [r["size"][0] for r in rows] == [3, 7, 15]


@pytest.mark.parametrize("name, size, layers", [
    ("lenet5", (1, 32, 32), ["c1", "s2", "c3", "s4"]),
    ("vgg11", (3, 64, 64), ["2", "5", "10"]),
    ("resnet18", (3, 64, 64), ["maxpool", "layer1", "layer2"]),
])
def test_gradient_probe_agrees_with_analytic_field(name, size, layers) -> None:
    model = _model(name)
    rows = viz.receptive_field(model, size)
    for layer in layers:
        row = _rf(rows, layer) if any(r["layer"] == layer for r in rows) else None
        if row is None:  # a container (e.g. ResNet's layer1): its last spatial module
            row = [r for r in rows if r["layer"].startswith(layer + ".")][-1]
        assert viz.empirical_receptive_field(model, size, layer) == viz.clipped_extent(row, size[-2:]), layer


def test_dilated_stack_gradient_probe() -> None:
    net = nn.Sequential(nn.Conv2d(1, 1, 3, dilation=1, padding=1), nn.Conv2d(1, 1, 3, dilation=2, padding=2),
                        nn.Conv2d(1, 1, 3, dilation=4, padding=4))
    assert viz.empirical_receptive_field(net, (1, 32, 32), "2") == (15, 15)


# ---------------------------------------------------------------------- saliency and Grad-CAM vs torch
class TorchLeNet(torch.nn.Module):
    """The textbook LeNet (tinyvision's lenet5_modern) written in torch, same keys."""

    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(torch.nn.Conv2d(1, 6, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                            torch.nn.Conv2d(6, 16, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2))
        self.classifier = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(400, 120), torch.nn.ReLU(),
                                              torch.nn.Linear(120, 84), torch.nn.ReLU(), torch.nn.Linear(84, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


@pytest.fixture(scope="module")
def lenet_pair():
    torch.manual_seed(0)
    ref = TorchLeNet().double().eval()
    ours = create_model("lenet5_modern").double().eval()
    ours.load_state_dict(ref.state_dict())
    image = np.random.default_rng(3).standard_normal((1, 32, 32))
    return ours, ref, image


def test_saliency_equals_torch_input_gradient(lenet_pair) -> None:
    ours, ref, image = lenet_pair
    x = torch.tensor(image[None], requires_grad=True)
    ref(x)[0, 4].backward()
    np.testing.assert_allclose(viz.saliency(ours, image, 4), x.grad.abs().numpy()[0].max(0), rtol=1e-10)


def test_smoothgrad_is_the_mean_torch_gradient_over_noisy_copies(lenet_pair) -> None:
    ours, ref, image = lenet_pair
    rng = np.random.default_rng(5)  # SmoothGrad's noise: std 0.15 (max - min), seeded
    noisy = [image + rng.standard_normal(image.shape) * 0.15 * (image.max() - image.min()) for _ in range(3)]
    expected = []
    for c in noisy:
        x = torch.tensor(c[None], requires_grad=True)
        ref(x)[0, 2].backward()
        expected.append(x.grad.abs().numpy()[0].max(0))
    got = viz.saliency(ours, image, 2, smoothgrad_samples=3, noise=0.15, seed=5)
    np.testing.assert_allclose(got, np.mean(expected, axis=0), rtol=1e-10)


def test_grad_cam_equals_torch_computation(lenet_pair) -> None:
    ours, ref, image = lenet_pair
    feats = []

    def keep(module, inputs, output) -> None:  # a hook that returns something replaces the output
        output.retain_grad()
        feats.append(output)

    handle = ref.features[3].register_forward_hook(keep)
    ref(torch.tensor(image[None]))[0, 7].backward()
    handle.remove()
    a, g = feats[0].detach()[0], feats[0].grad[0]
    cam = torch.relu((g.mean((1, 2))[:, None, None] * a).sum(0))
    cam = torch.nn.functional.interpolate(cam[None, None], size=(32, 32), mode="bilinear", align_corners=False)[0, 0]
    expected = (cam / cam.max()).numpy()
    np.testing.assert_allclose(viz.grad_cam(ours, image, 7, "features.3"), expected, rtol=1e-9, atol=1e-12)


def test_grad_cam_rejects_a_non_spatial_layer(lenet_pair) -> None:
    ours, _, image = lenet_pair
    with pytest.raises(ValueError, match="classifier.1"):
        viz.grad_cam(ours, image, 0, "classifier.1")


@pytest.mark.slow
def test_grad_cam_of_a_cnn_trained_on_shapes_lies_mostly_inside_the_object() -> None:
    """The visualisation issue's bar, measured as `python -m benchmarks.gradcam_shapes` does
    (about a minute of training): at the 8x8 stage, more than half of the map's mass lies
    inside the object's mask on more than half of 300 test images. A map blind to the image
    would put the mask's area fraction (0.23 on average) inside."""
    from benchmarks.gradcam_shapes import run

    result = run(argparse.Namespace(checkpoint=None, epochs=10, train_images=8000, seed=0, images=300,
                                    layer=["10"], figure=None))
    assert result["accuracy"] > 0.95
    stage = result["layers"]["10"]
    assert stage["median_share_inside_mask"] > 0.5, stage
    assert stage["fraction_share_above_half"] > 0.5, stage


def test_feature_maps_and_filters(lenet_pair) -> None:
    ours, _, image = lenet_pair
    maps = viz.feature_maps(ours, image, ["features.0", "features.3"])
    assert maps["features.0"].shape == (6, 28, 28) and maps["features.3"].shape == (16, 10, 10)
    f = viz.filters(ours.features[0])
    assert f.shape == (6, 1, 5, 5) and f.min() == 0.0 and np.allclose(f.max(axis=(1, 2, 3)), 1.0)


# ---------------------------------------------------------------------- summary
@pytest.mark.parametrize("name, kwargs, size", [("resnet18", {"num_classes": 10}, (3, 32, 32)),
                                                ("lenet5", {}, (1, 32, 32)),
                                                ("vit_tiny_patch16_224", {"img_size": 32, "patch_size": 8, "depth": 2}, (3, 32, 32))])
def test_summary_totals(name, kwargs, size) -> None:
    model = create_model(name, **kwargs)
    result = viz.summary(model, size, print_table=False)
    assert result["total_params"] == sum(p.numel() for p in model.parameters())
    assert sum(r["params"] for r in result["rows"]) == result["total_params"]


def test_summary_flops_equal_torch_flop_counter(lenet_pair) -> None:
    """torch counts 2 FLOPs per multiply-add of conv and matmul, as summary does."""
    ours, ref, _ = lenet_pair
    with FlopCounterMode(display=False) as counter:
        ref(torch.zeros(4, 1, 32, 32, dtype=torch.float64))
    assert viz.summary(ours, (4, 1, 32, 32), print_table=False)["total_flops"] == counter.get_total_flops()


def test_summary_counts_conv_flops_and_workspace() -> None:
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 4, 1))
    rows = viz.summary(net, (2, 3, 16, 16), print_table=False)["rows"]
    assert rows[0]["flops"] == 2 * 2 * 8 * 16 * 16 * 3 * 3 * 3
    assert rows[0]["workspace_bytes"] == 2 * 16 * 16 * 27 * 4
    assert rows[1]["workspace_bytes"] == 0  # a 1x1 stride-1 conv needs no im2col


# ---------------------------------------------------------------------- plots and the CLI run
def test_every_plot_writes_a_png(tmp_path, small_vit) -> None:
    image = np.random.default_rng(6).random((3, 32, 32)).astype(np.float32)
    maps = viz.attention_maps(small_vit, image)
    lenet = create_model("lenet5_modern")
    paths = [plot.plot_attention_temperatures(maps["scores"], tmp_path / "t.png"),
             plot.plot_attention_heads(maps["attention"], tmp_path / "h.png"),
             plot.plot_overlay(image, viz.cls_attention_grid(maps["attention"][-1]), tmp_path / "o.png"),
             plot.plot_posembed_similarity(viz.position_embedding_similarity(small_vit), tmp_path / "p.png"),
             plot.plot_filters(viz.filters(lenet.features[3]), tmp_path / "f.png"),
             plot.plot_feature_maps(viz.feature_maps(lenet, image[:1], ["features.0"]), tmp_path / "m.png")]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path


def test_viz_cli_prints_tables_and_writes_pngs(tmp_path, capsys) -> None:
    cli_main(["viz", "summary", "--model", "lenet5_modern"])
    assert "total params 61,706" in capsys.readouterr().out  # the textbook LeNet-5's count
    cli_main(["viz", "rf", "--model", "lenet5_modern", "--out", str(tmp_path)])
    assert "(16, 16)" in capsys.readouterr().out  # the second pool's field
    cli_main(["viz", "filters", "--model", "lenet5_modern", "--out", str(tmp_path)])
    assert (tmp_path / "filters.png").stat().st_size > 0 and (tmp_path / "receptive_field.png").stat().st_size > 0


def test_plots_never_touch_pyplot_or_the_global_backend(tmp_path) -> None:
    """A notebook keeps its backend: in a fresh interpreter, drawing the Trainer's curves and a
    filter grid imports no pyplot and leaves matplotlib's backend setting as it was."""
    import subprocess
    import sys

    code = (
        "import sys, matplotlib, numpy as np\n"
        "before = matplotlib.rcParams._get('backend')\n"
        "from tinyvision.viz import plot\n"
        f"p = plot.plot_curves([{{'epoch': 1, 'train_loss': 1.0, 'val_acc': 0.5}}], {str(tmp_path / 'c.png')!r})\n"
        f"plot.plot_filters(np.zeros((4, 3, 5, 5)), {str(tmp_path / 'f.png')!r})\n"
        "assert p.read_bytes()[:4] == b'\\x89PNG'\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
        "assert matplotlib.rcParams._get('backend') == before, matplotlib.rcParams._get('backend')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_trainer_curves_come_from_viz_plot() -> None:
    from tinyvision.train import trainer

    assert trainer.plot_curves is plot.plot_curves


def test_gradcam_default_layer_is_the_last_with_a_4x4_map(tmp_path, capsys) -> None:
    """LeNet-5's last conv (C5) is 1x1: a map of one value paints one tint. The default is the
    last layer whose map is at least 4x4 (S4, 5x5); --layer picks another."""
    from tinyvision.cli import main
    from tinyvision.viz.cli import _last_spatial_layer, _output_shapes

    model = create_model("lenet5").eval()
    shapes = _output_shapes(model, np.zeros((1, 32, 32), np.float32))
    assert shapes["c5"][-2:] == (1, 1) and _last_spatial_layer(shapes) == "s4"
    main(["viz", "gradcam", "--model", "lenet5", "--out", str(tmp_path)])
    assert "wrote" in capsys.readouterr().out and (tmp_path / "gradcam.png").exists()
    with pytest.raises(SystemExit, match="--layer 'fc': not a layer with"):
        main(["viz", "gradcam", "--model", "lenet5", "--layer", "fc", "--out", str(tmp_path)])
