"""RoIPool (Fast R-CNN, Girshick 2015) with torchvision.ops's signature.

The box is rounded to the pixel grid, cut into ``output_size`` bins (rounded again) and each bin
max-pooled: cheap, but the two roundings misplace the features by up to a pixel of the feature
map (16 image pixels at stride 16), the quantisation error that RoIAlign removes. The rule is in
``tinyvision/kernels/reference/roi_pool.py``; the gradient goes to each bin's winning pixel.
"""
from __future__ import annotations

from typing import Any

from tinyvision.autograd.function import Context, Function
from tinyvision.autograd.tensor import Tensor
from tinyvision.kernels.dispatch import kernel
from tinyvision.nn import Module
from tinyvision.ops._utils import output_pair, roi_array


class RoIPoolFunction(Function):
    """y = max over each (rounded) bin; dL/dx[argmax] += dL/dy."""

    @staticmethod
    def forward(ctx: Context, x, rois, spatial_scale, output_size):
        y, argmax = kernel("roi_pool", "roi_pool_forward", x)(x, rois, spatial_scale, output_size)
        ctx.save_for_backward(argmax, rois)
        ctx.input_shape = x.shape
        return y

    @staticmethod
    def backward(ctx: Context, grad):
        argmax, rois = ctx.saved_tensors
        return kernel("roi_pool", "roi_pool_backward", grad)(grad, argmax, rois, ctx.input_shape), None, None, None


def roi_pool(input: Tensor, boxes: Any, output_size: Any, spatial_scale: float = 1.0) -> Tensor:
    """RoIPool, as ``torchvision.ops.roi_pool``: input (N, C, H, W), boxes (K, 5) or a list of
    (L, 4) Tensors (see roi_align) -> (K, C, PH, PW). An empty bin gives 0."""
    op = "roi_pool"
    rois = roi_array(op, input, boxes)
    return RoIPoolFunction.apply(input, rois, float(spatial_scale), output_pair(op, output_size))


class RoIPool(Module):
    """``roi_pool`` as a layer: ``RoIPool(output_size, spatial_scale)``."""

    def __init__(self, output_size: Any, spatial_scale: float) -> None:
        super().__init__()
        self.output_size, self.spatial_scale = output_size, spatial_scale

    def forward(self, input: Tensor, rois: Any) -> Tensor:
        return roi_pool(input, rois, self.output_size, self.spatial_scale)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, spatial_scale={self.spatial_scale}"
