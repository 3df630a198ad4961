"""What FCN and DeepLabV3 share: backbone features -> head -> upsample to the input size."""
from __future__ import annotations

from collections import OrderedDict

from tinyvision import functional as F
from tinyvision import nn
from tinyvision.autograd.tensor import Tensor


class _SimpleSegmentationModel(nn.Module):
    """(N, 3, H, W) -> {"out": (N, num_classes, H, W)[, "aux": (N, num_classes, H, W)]}.

    ``backbone`` returns a dict with "out" (the last stage, output stride 8) and, with an
    auxiliary head, "aux" (the stage before). Each head predicts at the backbone's resolution
    and its scores are upsampled bilinearly to the input size (torchvision's align_corners=False).
    The auxiliary output only helps training (a second, shorter path for the gradient to the
    middle of the backbone); torchvision weights it 0.5 in its reference recipe.
    """

    def __init__(self, backbone: nn.Module, classifier: nn.Module, aux_classifier: nn.Module | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.classifier = classifier
        self.aux_classifier = aux_classifier

    def forward(self, x: Tensor) -> "OrderedDict[str, Tensor]":
        input_shape = tuple(x.shape[-2:])
        features = self.backbone(x)
        result: OrderedDict[str, Tensor] = OrderedDict()
        out = self.classifier(features["out"])
        result["out"] = F.interpolate(out, size=input_shape, mode="bilinear", align_corners=False)
        if self.aux_classifier is not None:
            aux = self.aux_classifier(features["aux"])
            result["aux"] = F.interpolate(aux, size=input_shape, mode="bilinear", align_corners=False)
        return result
