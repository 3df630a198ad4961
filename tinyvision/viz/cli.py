"""``tinyvision viz WHAT``: each picture from one command (see tinyvision/cli.py for options).

    tinyvision viz attention --model vit_tiny_patch16_224 [--checkpoint C] [--image I] --out DIR
    tinyvision viz posembed  --model vit_tiny_patch16_224 --checkpoint C --out DIR
    tinyvision viz rf        --model resnet18 [--image-size 224]
    tinyvision viz gradcam   --checkpoint C --image I [--layer NAME] --out DIR
    tinyvision viz filters   --model resnet18 [--checkpoint C] --out DIR
    tinyvision viz summary   --model resnet18 [--image-size 224]
    tinyvision viz segments  --checkpoint C --out DIR      (image | truth | prediction on test images)
    tinyvision viz anchors   [--checkpoint C] --out DIR     (tinyvision/viz/anchors.py)
    tinyvision viz mae       --checkpoint C [--image I] --out DIR   (original / masked / reconstruction)
    tinyvision viz detr      --checkpoint C --out DIR       (DETR's per-query attention and box centres)
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from tinyvision.viz import plot


# the pictures that only a Vision Transformer has (attention between tokens, position embeddings)
VIT_ONLY = {"attention": "blocks", "posembed": "pos_embed"}


def _model_and_size(args: argparse.Namespace) -> tuple[Any, int, int]:
    """(model, channels, image size) from --checkpoint, or a fresh --model."""
    from tinyvision.train.checkpoint import load_checkpoint
    from tinyvision.train.tasks import check_model_name

    if args.checkpoint:
        try:
            model, config = load_checkpoint(args.checkpoint)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"viz {args.what} --checkpoint: {exc}") from None
        if args.model and args.model != config["model"]:
            raise SystemExit(f"viz {args.what}: --model {args.model} but {args.checkpoint} holds a "
                             f"{config['model']}; drop --model or pass --model {config['model']}")
        kw = config["kwargs"]
        return model, kw.get("in_channels", kw.get("in_chans", 3)), config["image_size"]
    if not args.model:
        raise SystemExit(f"viz {args.what}: give --model NAME or --checkpoint PATH")
    try:
        check_model_name(args.model)
    except ValueError as exc:
        raise SystemExit(f"viz {args.what}: {exc}") from None
    from tinyvision.models import create_model

    size = args.image_size or (32 if args.model.startswith("lenet") else 224)
    channels = 1 if args.model.startswith("lenet") else 3
    return create_model(args.model).eval(), channels, size


def _image(args: argparse.Namespace, channels: int, size: int) -> np.ndarray:
    """(C, size, size): --image resized, or a sample from the checkpoint's data, or noise."""
    if args.image:
        from tinyvision.train.checkpoint import prepare_image

        return prepare_image(args.image, channels, size)[0]
    if channels == 3:
        from tinyvision.data import shapes

        return shapes(1, size, seed=7)[0][0]
    from tinyvision.data import digits

    return digits(train=False, size=size)[0][0]


def run_viz(args: argparse.Namespace) -> None:
    from tinyvision import viz

    out = Path(args.out)
    if args.what == "segments":
        from tinyvision.viz.segmentation import prediction_grid_from_checkpoint

        if not args.checkpoint:
            raise SystemExit("viz segments: give --checkpoint PATH (a segment task's checkpoint)")
        print("wrote", prediction_grid_from_checkpoint(args.checkpoint, out / "segmentation_grid.png"))
        return
    if args.what == "anchors":
        from tinyvision.viz.anchors import run_anchors

        run_anchors(args)
        return
    if args.what == "detr":
        from tinyvision.viz.detr import run_detr

        run_detr(args)
        return
    model, channels, size = _model_and_size(args)
    name = args.model or _checkpoint_model(args.checkpoint)
    what = f"{name}, input {channels}x{size}x{size}"  # every figure's title starts with this
    if args.what in VIT_ONLY and not hasattr(model, VIT_ONLY[args.what]):
        raise SystemExit(f"viz {args.what} needs a Vision Transformer (vit_*), got a {type(model).__name__}, "
                         "which has no attention between tokens; try viz gradcam or viz filters")
    if args.what == "summary":
        viz.summary(model, (channels, size, size))
        return
    if args.what == "rf":
        rows = viz.receptive_field(model, (channels, size, size))
        print(f"receptive fields of {what}; field, jump and start are in input pixels, (height, width)")
        print(f"{'layer':<28} {'output (C, H, W)':<20} {'field (px)':>12} {'jump (px)':>10} {'start (px)':>14}")
        for r in rows:
            print(f"{r['layer']:<28} {str(r['output_shape']):<20} {str(r['size']):>12} "
                  f"{str(r['jump']):>10} {str(r['start']):>14}")
        print("wrote", plot.plot_receptive_field(rows, out / "receptive_field.png", title=what))
        return
    image = _image(args, channels, size)
    if args.what == "attention":
        maps = viz.attention_maps(model, image)
        print("wrote", plot.plot_attention_temperatures(maps["scores"], out / "attention_temperature.png", title=what))
        print("wrote", plot.plot_attention_heads(maps["attention"], out / "attention_heads.png", title=what))
        rollout = viz.cls_attention_grid(viz.attention_rollout(maps["attention"]))
        print("wrote", plot.plot_overlay(image, rollout, out / "attention_rollout.png",
                                         f"{what}: class-token attention rollout, all layers",
                                         label="share of the class token's attention"))
    elif args.what == "posembed":
        print("wrote", plot.plot_posembed_similarity(viz.position_embedding_similarity(model), out / "posembed.png",
                                                     title=what))
    elif args.what == "gradcam":
        import tinyvision as tv

        with tv.no_grad():
            target = int(np.argmax(model(tv.tensor(image[None])).numpy()))
        shapes = _output_shapes(model, image)
        layer = args.layer or _last_spatial_layer(shapes)
        if layer not in shapes or len(shapes[layer]) != 4:
            spatial = [n for n, s in shapes.items() if len(s) == 4]
            raise SystemExit(f"viz gradcam --layer {layer!r}: not a layer with (N, C, H, W) output; "
                             f"choose one of: {', '.join(spatial)}")
        cam = viz.grad_cam(model, image, target, layer)
        h, w = shapes[layer][-2:]
        print("wrote", plot.plot_overlay(image, cam, out / "gradcam.png",
                                         f"{what}: Grad-CAM at {layer} ({h}x{w}), class {target}"))
        sal = viz.saliency(model, image, target, smoothgrad_samples=16)
        print("wrote", plot.plot_overlay(image, sal, out / "saliency.png", f"{what}: SmoothGrad, class {target}",
                                         label="|d logit / d pixel|, mean of 16 noisy copies"))
    elif args.what == "mae":
        if not hasattr(model, "forward_decoder"):
            raise SystemExit("viz mae: give the --checkpoint of a masked autoencoder (tinyvision train --task mae)")
        from tinyvision.train.selfsup import mae_pictures

        images = np.stack([image] + [_image_sample(channels, size, seed) for seed in (8, 9, 10)])
        rows = mae_pictures(model, images)
        titles = ["original", f"masked {model.mask_ratio:.0%}", "reconstruction"]
        print("wrote", plot.plot_image_rows(rows, titles, out / "mae.png"))
    elif args.what == "filters":
        from tinyvision import nn

        first_name, first = next((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d))
        print("wrote", plot.plot_filters(viz.filters(first), out / "filters.png", title=f"{what}: {first_name}"))


def _image_sample(channels: int, size: int, seed: int) -> np.ndarray:
    """One more sample image (shapes for colour models), for figures with several rows."""
    from tinyvision.data import digits, shapes

    return shapes(1, size, seed=seed)[0][0] if channels == 3 else digits(train=False, size=size)[seed][0]


def _checkpoint_model(path: str | None) -> str:
    from tinyvision.train.checkpoint import read_config
    import tinyvision as tv

    return read_config(tv.load(path), path)["model"] if path else "model"


def _output_shapes(model: Any, image: np.ndarray) -> dict[str, tuple[int, ...]]:
    """Each named module's output shape (N, ...) for ``image``, in the order the forward ran them."""
    from tinyvision import viz

    names = [name for name, _ in model.named_modules() if name]
    return {name: (1, *out.shape) for name, out in viz.feature_maps(model, image, names).items()}


def _last_spatial_layer(shapes: dict[str, tuple[int, ...]], minimum: int = 4) -> str:
    """Grad-CAM's default layer: the last one (in forward order) whose output is a spatial map of
    at least ``minimum`` x ``minimum``; a coarser map (LeNet-5's 1x1 C5) can only paint one tint."""
    spatial = [n for n, s in shapes.items() if len(s) == 4 and min(s[-2:]) >= minimum]
    if not spatial:
        raise SystemExit(f"viz gradcam: no layer has a spatial map of at least {minimum}x{minimum}; pass --layer")
    return spatial[-1]
