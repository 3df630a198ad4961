"""RoIAlign (Mask R-CNN, He et al. 2017) with torchvision.ops's signature.

Each region of interest is cut out of the feature map and resampled to a fixed ``output_size``
grid by bilinear interpolation at real-valued sample points: no rounding of the box to the
pixel grid, so that a 1-pixel shift of the box moves the features smoothly (RoIPool's
quantisation moves them in jumps, which hurts masks). The rule, and its edge cases, are in
``tinyvision/kernels/reference/roi_align.py``; the gradient flows into the feature map (not into
the boxes, as in torchvision).
"""
from __future__ import annotations

from typing import Any

from tinyvision.autograd.function import Context, Function
from tinyvision.autograd.tensor import Tensor
from tinyvision.kernels.dispatch import kernel
from tinyvision.nn import Module
from tinyvision.ops._utils import output_pair, roi_array


class RoIAlignFunction(Function):
    """y[k, c, ph, pw] = mean of bilinear samples of x[b_k, c] in bin (ph, pw) of RoI k;
    dL/dx spreads each bin's gradient back onto the four pixels of every sample, by weight."""

    @staticmethod
    def forward(ctx: Context, x, rois, spatial_scale, output_size, sampling_ratio, aligned):
        ctx.args = (spatial_scale, output_size, sampling_ratio, aligned)
        ctx.input_shape = x.shape
        ctx.save_for_backward(rois)
        return kernel("roi_align", "roi_align_forward", x)(x, rois, *ctx.args)

    @staticmethod
    def backward(ctx: Context, grad):
        (rois,) = ctx.saved_tensors
        dx = kernel("roi_align", "roi_align_backward", grad)(grad, rois, ctx.input_shape, *ctx.args)
        return dx, None, None, None, None, None


def roi_align(input: Tensor, boxes: Any, output_size: Any, spatial_scale: float = 1.0,
              sampling_ratio: int = -1, aligned: bool = False) -> Tensor:
    """RoIAlign, as ``torchvision.ops.roi_align``.

    input (N, C, H, W); boxes a (K, 5) Tensor of ``(batch_index, x1, y1, x2, y2)`` rows or a list
    of N (L_i, 4) Tensors, in image coordinates (``spatial_scale`` maps them onto the feature map,
    e.g. 1/16); output_size an int or (PH, PW); ``sampling_ratio`` samples per bin along each
    axis (<= 0: ceil(bin size)); ``aligned=True`` shifts the box by -0.5 pixel so that pixel
    centres sit at integer + 0.5 (the correct alignment; False is the legacy Detectron rule).
    Returns (K, C, PH, PW).
    """
    op = "roi_align"
    rois = roi_array(op, input, boxes)
    size = output_pair(op, output_size)
    return RoIAlignFunction.apply(input, rois, float(spatial_scale), size, int(sampling_ratio), bool(aligned))


class RoIAlign(Module):
    """``roi_align`` as a layer: ``RoIAlign(output_size, spatial_scale, sampling_ratio, aligned)``."""

    def __init__(self, output_size: Any, spatial_scale: float, sampling_ratio: int, aligned: bool = False) -> None:
        super().__init__()
        self.output_size, self.spatial_scale = output_size, spatial_scale
        self.sampling_ratio, self.aligned = sampling_ratio, aligned

    def forward(self, input: Tensor, rois: Any) -> Tensor:
        return roi_align(input, rois, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned)

    def extra_repr(self) -> str:
        return (f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
                f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}")
