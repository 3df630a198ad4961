"""Semantic segmentation models with torchvision's names, keys and dict outputs
({"out": scores at the input size[, "aux": the auxiliary head's]})."""
from tinyvision.models.segmentation.deeplabv3 import ASPP, DeepLabHead, DeepLabV3, deeplabv3_resnet50
from tinyvision.models.segmentation.fcn import FCN, FCNHead, fcn_resnet50, fcn_resnet101

__all__ = ["ASPP", "DeepLabHead", "DeepLabV3", "FCN", "FCNHead", "deeplabv3_resnet50", "fcn_resnet50",
           "fcn_resnet101"]
