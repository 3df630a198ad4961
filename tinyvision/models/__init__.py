"""The model zoo: LeNet-5, AlexNet, VGG, GoogLeNet, ResNet and ViT, with torchvision/timm keys.

``create_model("resnet18", num_classes=10, cifar_stem=True)``, ``list_models("vit*")``.
"""
from tinyvision.models.registry import create_model, list_models, register_model
from tinyvision.models import alexnet, googlenet, lenet, resnet, vgg, vit  # noqa: F401  (registers them)
from tinyvision.models import deit, mae, swin, vit_hybrid  # noqa: F401  (registers deit_*, mae_*, swin_*, vit_*_convstem_*)
from tinyvision.models import segmentation, unet  # noqa: F401  (registers fcn_*, deeplabv3_*, unet*)
from tinyvision.models import detection  # noqa: F401,E402  (registers the detectors)
from tinyvision.models import restoration  # noqa: F401  (dncnn, srcnn, espcn, deblur_unet)
from tinyvision.models import detr, maskformer, sam  # noqa: F401,E402  (detr_*, maskformer_resnet18, sam_resnet18)
from tinyvision.models.alexnet import AlexNet, AlexNetPaper
from tinyvision.models.googlenet import GoogLeNet
from tinyvision.models.lenet import LeNet5, LeNet5Modern
from tinyvision.models.resnet import ResNet
from tinyvision.models.vgg import VGG
from tinyvision.models.vit import VisionTransformer

__all__ = ["create_model", "list_models", "register_model", "AlexNet", "AlexNetPaper", "GoogLeNet",
           "LeNet5", "LeNet5Modern", "ResNet", "VGG", "VisionTransformer"]
