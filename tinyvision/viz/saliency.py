"""Why did the network say that? Input-gradient saliency (with SmoothGrad) and Grad-CAM.

* Saliency (Simonyan et al. 2013): |d logit_target / d image|, the max over colour channels.
  SmoothGrad (Smilkov et al. 2017) averages it over noisy copies of the image, which removes
  much of the speckle.
* Grad-CAM (Selvaraju et al. 2017): take a conv layer's feature maps A_c (h x w) and the
  gradient of the target logit w.r.t. them; weight each map by its mean gradient
  alpha_c = mean(dy/dA_c) and keep the positive part: cam = relu(sum_c alpha_c A_c),
  upsampled to the image. Coarse, but class-specific.
"""
from __future__ import annotations

from typing import Any

import numpy as np

import tinyvision as tv
import tinyvision.nn.functional as F
from tinyvision.viz._model import evaluating, one_image


def _logits(out: Any) -> tv.Tensor:
    return out[0] if isinstance(out, tuple) else out


def saliency(model: Any, image: Any, target: int, smoothgrad_samples: int = 0,
             noise: float = 0.15, seed: int = 0) -> np.ndarray:
    """(H, W) map of max_c |d logit_target / d image_c|; with ``smoothgrad_samples`` > 0, the
    mean over that many copies with Gaussian noise of std ``noise`` x (max - min) added."""
    x0 = one_image(model, image).numpy()
    rng = np.random.default_rng(seed)
    sigma = noise * float(x0.max() - x0.min())
    copies = [x0] if smoothgrad_samples <= 0 else \
        [x0 + rng.standard_normal(x0.shape).astype(x0.dtype) * sigma for _ in range(smoothgrad_samples)]
    total = np.zeros(x0.shape[-2:])
    with evaluating(model) as m:
        for c in copies:
            x = tv.tensor(c, requires_grad=True)
            _logits(m(x))[0, target].backward()
            total += np.abs(x.grad.numpy()[0]).max(0)
    return total / len(copies)


def grad_cam(model: Any, image: Any, target: int, layer: str) -> np.ndarray:
    """(H, W) Grad-CAM heat map in [0, 1] for class ``target`` at the conv layer named
    ``layer`` (a name from ``model.named_modules()``, e.g. 'layer4' for a ResNet)."""
    x = one_image(model, image)
    captured: list[tv.Tensor] = []

    def keep(module: Any, inputs: Any, output: tv.Tensor) -> None:
        output.retain_grad()
        captured.append(output)

    handle = model.get_submodule(layer).register_forward_hook(keep)
    try:
        with evaluating(model) as m:
            _logits(m(x))[0, target].backward()
    finally:
        handle.remove()
    feats = captured[-1]
    if feats.ndim != 4:
        raise ValueError(f"grad_cam: layer {layer!r} outputs shape {feats.shape}; it needs (1, C, h, w) maps")
    a, g = feats.detach().numpy()[0].astype(np.float64), feats.grad.numpy()[0].astype(np.float64)
    weights = g.mean(axis=(1, 2))                       # alpha_c = mean of dy/dA_c
    cam = np.maximum((weights[:, None, None] * a).sum(0), 0)
    cam = F.interpolate(tv.tensor(cam[None, None]), size=x.shape[-2:], mode="bilinear",
                        align_corners=False).numpy()[0, 0]
    return cam / cam.max() if cam.max() > 0 else cam
