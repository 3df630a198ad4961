"""AlexNet (Krizhevsky, Sutskever, Hinton 2012): ReLU, dropout, overlapping max-pooling.

* ``alexnet`` — torchvision's layout and keys, which follow the single-tower "one weird
  trick" variant (Krizhevsky 2014): 64-192-384-256-256 filters, no LRN, and dropout placed
  *before* each hidden fully connected layer (the paper puts it after; torchvision keeps it
  for weight compatibility).
* ``alexnet_paper`` — the 2012 paper's network: 96-256-384-384-256 filters, conv2/4/5 split
  into two towers (``groups=2``), local response normalisation after conv1 and conv2,
  N(0, 0.01) weights and bias 1 on conv2/4/5 and the hidden FCs.
"""
from __future__ import annotations

import tinyvision as tv
from tinyvision import nn
from tinyvision.models.registry import register_model


class AlexNet(nn.Module):
    """torchvision's AlexNet. Input (N, 3, 224, 224) -> logits (N, num_classes)."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),  # 55
            nn.MaxPool2d(kernel_size=3, stride=2),                                         # 27
            nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),                                         # 13
            nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),                                         # 6
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))  # identity at 224x224
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
            nn.Dropout(p=dropout), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: tv.Tensor) -> tv.Tensor:
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


class AlexNetPaper(nn.Module):
    """The 2012 paper's two-tower AlexNet as one network with grouped convolutions.

    LRN uses PyTorch's formula, which divides alpha by the window size: the paper's
    k=2, n=5, alpha=1e-4 (not divided) is ``LocalResponseNorm(5, alpha=5e-4, k=2)``.
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        lrn = lambda: nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)  # noqa: E731
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True), lrn(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(96, 256, kernel_size=5, padding=2, groups=2), nn.ReLU(inplace=True), lrn(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(256, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),  # crosses towers
            nn.Conv2d(384, 384, kernel_size=3, padding=1, groups=2), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1, groups=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(  # the paper: FC -> ReLU -> dropout
            nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True), nn.Dropout(p=dropout),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        ones_bias = {id(self.features[i]) for i in (5, 12, 14)} | {id(self.classifier[i]) for i in (0, 3)}
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.constant_(m.bias, 1.0 if id(m) in ones_bias else 0.0)

    def forward(self, x: tv.Tensor) -> tv.Tensor:
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


@register_model
def alexnet(num_classes: int = 1000, **kwargs) -> AlexNet:
    """torchvision's AlexNet (61,100,840 parameters with 1000 classes)."""
    return AlexNet(num_classes=num_classes, **kwargs)


@register_model
def alexnet_paper(num_classes: int = 1000, **kwargs) -> AlexNetPaper:
    """The 2012 paper's AlexNet: grouped conv2/4/5, LRN, paper init."""
    return AlexNetPaper(num_classes=num_classes, **kwargs)
