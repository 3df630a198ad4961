"""ResNet (He et al. 2015): learn a residual F(x) and add it to x.

With ``y = x + F(x)`` the gradient reaches early layers through the identity path
unchanged, so very deep networks train. Blocks are ``BasicBlock`` (two 3x3 convs, ResNet-18/34)
or ``Bottleneck`` (1x1 reduce, 3x3, 1x1 expand by 4, ResNet-50). A stage halves the size
with stride 2 in its first block, and a 1x1 stride-2 conv + BN ("downsample") brings the
identity to the new shape. torchvision's keys; its ResNet-50 is "v1.5": the stride sits in
the 3x3 conv of the bottleneck, not the first 1x1 as in the paper. He (kaiming) init.

For dense prediction (DeepLab, Chen et al. 2017) ``replace_stride_with_dilation`` turns the
stride 2 of stages 2-4 into dilation: the map stays at the previous resolution and the 3x3
convs of that stage and after sample every d-th pixel (d doubles per replaced stride), so each
unit still sees as far as before. [False, True, True] gives output stride 8 instead of 32.
"""
from __future__ import annotations

from functools import partial
from typing import Type

import tinyvision as tv
from tinyvision import nn
from tinyvision.models.registry import register_model


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3x3 conv, padding = dilation so that stride 1 keeps the size."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=dilation,
                     dilation=dilation, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """relu(x + bn2(conv2(relu(bn1(conv1(x))))))."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 dilation: int = 1) -> None:
        super().__init__()
        if dilation > 1:  # as torchvision: dilated ResNets are built from bottlenecks
            raise NotImplementedError("BasicBlock: dilation > 1 is not supported (use a Bottleneck ResNet)")
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: tv.Tensor) -> tv.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    """1x1 (reduce to ``planes``) -> 3x3 (stride here, v1.5) -> 1x1 (expand to 4 * planes)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: tv.Tensor) -> tv.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNet(nn.Module):
    """Input (N, 3, H, W) -> logits (N, num_classes).

    ``cifar_stem=True`` swaps the ImageNet stem (7x7 stride-2 conv + max-pool, /4) for one
    3x3 stride-1 conv without pooling, the usual choice for 32x32 images; the keys stay the
    same (conv1.weight is then (64, 3, 3, 3)).
    """

    def __init__(self, block: Type[BasicBlock | Bottleneck], layers: list[int], num_classes: int = 1000,
                 zero_init_residual: bool = False, cifar_stem: bool = False, in_channels: int = 3,
                 replace_stride_with_dilation: list[bool] | None = None) -> None:
        super().__init__()
        self.inplanes, self.dilation = 64, 1
        dilate = replace_stride_with_dilation or [False, False, False]
        if len(dilate) != 3:
            raise ValueError(f"ResNet: replace_stride_with_dilation must be None or a 3-element list "
                             f"(layer2, layer3, layer4), got {replace_stride_with_dilation}")
        # children in torchvision's order (conv1, bn1, relu, maxpool, layer1..4): feature
        # extractors (models._utils.IntermediateLayerGetter) run them in this order
        if cifar_stem:
            self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if cifar_stem else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2, dilate=dilate[0])
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2, dilate=dilate[1])
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2, dilate=dilate[2])
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # He init: keeps the activation variance through ReLUs
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:  # each block starts as the identity (Goyal et al. 2017)
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def _make_layer(self, block: Type[BasicBlock | Bottleneck], planes: int, blocks: int, stride: int = 1,
                    dilate: bool = False) -> nn.Sequential:
        previous_dilation = self.dilation
        if dilate:  # keep the resolution; later 3x3 convs look stride-times further instead
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        # as torchvision: the stage's first block keeps the previous dilation, the rest use the new one
        layers = [block(self.inplanes, planes, stride, downsample, dilation=previous_dilation)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, dilation=self.dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: tv.Tensor) -> tv.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


resnet18 = register_model(partial(ResNet, BasicBlock, [2, 2, 2, 2]), "resnet18")  # 11,689,512 params
resnet34 = register_model(partial(ResNet, BasicBlock, [3, 4, 6, 3]), "resnet34")  # 21,797,672
resnet50 = register_model(partial(ResNet, Bottleneck, [3, 4, 6, 3]), "resnet50")  # 25,557,032
resnet101 = register_model(partial(ResNet, Bottleneck, [3, 4, 23, 3]), "resnet101")  # 44,549,160
