"""Looking at what a CNN learned: its filters and the feature maps an image produces."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

import tinyvision as tv
from tinyvision.viz._model import evaluating, one_image


def filters(conv_layer: Any) -> np.ndarray:
    """The layer's weights (out, in/groups, kH, kW), each filter scaled to [0, 1] for display."""
    w = conv_layer.weight.detach().numpy().astype(np.float64)
    lo = w.min(axis=(1, 2, 3), keepdims=True)
    span = w.max(axis=(1, 2, 3), keepdims=True) - lo
    return (w - lo) / np.where(span > 0, span, 1)


def feature_maps(model: Any, image: Any, layers: Sequence[str]) -> dict[str, np.ndarray]:
    """Outputs of the named layers for one image: {name: (C, h, w)} (the batch dim dropped), in
    the order the forward first ran them (a layer run twice keeps its last output)."""
    out: dict[str, np.ndarray] = {}

    def keep(name: str) -> Any:
        def hook(module: Any, inputs: Any, output: Any) -> None:  # returns None: the output is unchanged
            if isinstance(output, tv.Tensor):  # a block returning a tuple (GoogLeNet's aux heads) is skipped
                out[name] = output.detach().numpy()[0]
        return hook

    handles = [model.get_submodule(name).register_forward_hook(keep(name)) for name in layers]
    try:
        with tv.no_grad(), evaluating(model) as m:
            m(one_image(model, image))
    finally:
        for h in handles:
            h.remove()
    return out
