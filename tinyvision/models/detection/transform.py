"""What a detector does to images before and after the network (torchvision's
``GeneralizedRCNNTransform``), and the ``ImageList`` it hands on.

Before: normalise each image with the ImageNet mean and std; rescale it so that its short side is
``min_size`` unless its long side would then exceed ``max_size`` (bilinear; the boxes of the
targets scale with it); pad the batch with zeros at the bottom and right to a common size
divisible by 32 (every stride of the backbone then divides it). After: scale the detected boxes
back to each image's original size (and paste masks into the image, for Mask R-CNN).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from tinyvision import functional as F
from tinyvision.autograd.tensor import Tensor
from tinyvision.kernels.compat import array_module
from tinyvision.nn import Module


class ImageList:
    """A padded batch ``tensors`` (N, C, H, W) and each image's size before padding."""

    def __init__(self, tensors: Tensor, image_sizes: list[tuple[int, int]]) -> None:
        self.tensors, self.image_sizes = tensors, image_sizes


def resize_boxes(boxes: Any, original_size: Sequence[int], new_size: Sequence[int]) -> Any:
    """Scale xyxy boxes from an image of ``original_size`` (H, W) to ``new_size`` (float32 ratios,
    as torchvision)."""
    data = boxes.data if isinstance(boxes, Tensor) else boxes
    ratio_h = np.float32(new_size[0]) / np.float32(original_size[0])
    ratio_w = np.float32(new_size[1]) / np.float32(original_size[1])
    scale = array_module(data).asarray([ratio_w, ratio_h, ratio_w, ratio_h], dtype=np.float32)
    out = (data * scale).astype(data.dtype, copy=False)
    return Tensor(out) if isinstance(boxes, Tensor) else out


class GeneralizedRCNNTransform(Module):
    def __init__(self, min_size: int | Sequence[int], max_size: int, image_mean: Sequence[float],
                 image_std: Sequence[float], size_divisible: int = 32) -> None:
        super().__init__()
        self.min_size = (min_size,) if isinstance(min_size, int) else tuple(min_size)
        self.max_size, self.size_divisible = max_size, size_divisible
        self.image_mean, self.image_std = list(image_mean), list(image_std)

    def normalize(self, image: Tensor) -> Tensor:
        xp = array_module(image.data)
        mean = xp.asarray(self.image_mean, dtype=image.dtype)[:, None, None]
        std = xp.asarray(self.image_std, dtype=image.dtype)[:, None, None]
        return (image - Tensor(mean)) / Tensor(std)

    def resize(self, image: Tensor, target: dict | None) -> tuple[Tensor, dict | None]:
        """Short side to min_size (a random choice among them in training), long side <= max_size."""
        h, w = image.shape[-2:]
        if self.training and len(self.min_size) > 1:
            from tinyvision.random import generator

            size = self.min_size[int(generator("cpu").integers(len(self.min_size)))]
        else:
            size = self.min_size[-1]
        scale = min(size / min(h, w), self.max_size / max(h, w))
        new_h, new_w = int(math.floor(h * scale)), int(math.floor(w * scale))
        if (new_h, new_w) != (h, w):  # (bilinear at the same size is the identity: skip it)
            image = F.interpolate(image[None], scale_factor=scale, mode="bilinear", align_corners=False,
                                  recompute_scale_factor=True)[0]
        if target is not None and "boxes" in target:
            target = dict(target, boxes=resize_boxes(target["boxes"], (h, w), image.shape[-2:]))
            if "masks" in target and (new_h, new_w) != (h, w):
                m = Tensor(target["masks"].data.astype(np.float32)[:, None])
                target["masks"] = Tensor(F.interpolate(m, size=tuple(image.shape[-2:]), mode="nearest").data[:, 0]
                                         .astype(np.uint8))
        return image, target

    def batch_images(self, images: list[Tensor]) -> Tensor:
        """Zero-pad to the largest H and W, rounded up to a multiple of size_divisible."""
        stride = float(self.size_divisible)
        H = int(math.ceil(max(i.shape[-2] for i in images) / stride) * stride)
        W = int(math.ceil(max(i.shape[-1] for i in images) / stride) * stride)
        return F.stack([F.pad(i, (0, W - i.shape[-1], 0, H - i.shape[-2])) for i in images], dim=0)

    def forward(self, images: list[Tensor], targets: list[dict] | None = None) -> tuple[ImageList, list[dict] | None]:
        for i, image in enumerate(images):
            if image.ndim != 3:
                raise ValueError(f"GeneralizedRCNNTransform: images[{i}] must be (C, H, W), got shape {tuple(image.shape)}")
        out_images, out_targets = [], [] if targets is not None else None
        for i, image in enumerate(images):
            image, target = self.resize(self.normalize(image), None if targets is None else dict(targets[i]))
            out_images.append(image)
            if out_targets is not None:
                out_targets.append(target)
        sizes = [tuple(int(s) for s in im.shape[-2:]) for im in out_images]
        return ImageList(self.batch_images(out_images), sizes), out_targets

    def postprocess(self, result: list[dict], image_shapes: list, original_image_sizes: list) -> list[dict]:
        if self.training:
            return result
        for pred, size, original in zip(result, image_shapes, original_image_sizes):
            pred["boxes"] = resize_boxes(pred["boxes"], size, original)
            if "masks" in pred:
                from tinyvision.models.detection.roi_heads import paste_masks_in_image

                pred["masks"] = paste_masks_in_image(pred["masks"], pred["boxes"], original)
        return result
