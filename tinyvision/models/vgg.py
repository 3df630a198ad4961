"""VGG (Simonyan & Zisserman 2014): depth from stacks of 3x3 convolutions only.

Two 3x3 convs see a 5x5 field and three see 7x7, with fewer parameters and more
non-linearities than one big kernel. torchvision's layout and keys; ``_bn`` variants put
BatchNorm between each conv and its ReLU (not in the paper, which predates BatchNorm).
"""
from __future__ import annotations

from functools import partial

import tinyvision as tv
from tinyvision import nn
from tinyvision.models.registry import register_model

# numbers are conv widths, "M" a 2x2 max-pool; the paper's configurations A, B, D, E
CONFIGS = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"],
}


def make_layers(config: list, batch_norm: bool = False, in_channels: int = 3) -> nn.Sequential:
    """The feature extractor: conv 3x3 pad 1 (+ BN) + ReLU per number, max-pool per 'M'."""
    layers: list[nn.Module] = []
    for v in config:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers.append(nn.Conv2d(in_channels, v, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU(inplace=True))
        in_channels = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """Input (N, 3, 224, 224) -> features (N, 512, 7, 7) -> logits (N, num_classes)."""

    def __init__(self, config: str = "D", batch_norm: bool = False, num_classes: int = 1000,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.features = make_layers(CONFIGS[config], batch_norm)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(inplace=True), nn.Dropout(p=dropout),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        for m in self.modules():  # torchvision's init
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: tv.Tensor) -> tv.Tensor:
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


vgg11 = register_model(partial(VGG, "A", False), "vgg11")
vgg11_bn = register_model(partial(VGG, "A", True), "vgg11_bn")
vgg13 = register_model(partial(VGG, "B", False), "vgg13")
vgg13_bn = register_model(partial(VGG, "B", True), "vgg13_bn")
vgg16 = register_model(partial(VGG, "D", False), "vgg16")
vgg16_bn = register_model(partial(VGG, "D", True), "vgg16_bn")
vgg19 = register_model(partial(VGG, "E", False), "vgg19")
vgg19_bn = register_model(partial(VGG, "E", True), "vgg19_bn")
