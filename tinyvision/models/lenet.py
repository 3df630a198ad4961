"""LeNet-5 (LeCun, Bottou, Bengio, Haffner 1998, "Gradient-based learning applied to document
recognition"), in two honest versions:

* ``lenet5`` — the paper's network: 32x32 input, C1 conv, S2 trainable subsampling,
  C3 with the paper's sparse connection table, S4, C5, F6, all squashed by 1.7159 tanh(2a/3),
  and Euclidean RBF output units.
* ``lenet5_modern`` — the textbook variant (as in most tutorials): the same layer sizes with
  full C3 connectivity, ReLU, max-pooling and a plain linear classifier.

Neither exists in torchvision, so there is no checkpoint to load; parameter counts follow
the paper (60,000 trainable parameters for the paper's network with 10 classes).
"""
from __future__ import annotations

import numpy as np

import tinyvision as tv
import tinyvision.nn.functional as F
from tinyvision import nn
from tinyvision.models.registry import register_model

# C3 map -> the S2 maps it reads (paper, Table I): 6 maps see 3 neighbours, 6 see 4
# neighbours, 3 see 4 non-neighbours, the last sees all 6. Breaking symmetry this way makes
# the maps learn different features, and it cut the connections to 1,516 parameters.
C3_TABLE = ((0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
            (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
            (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5), (0, 1, 2, 3, 4, 5))


class Squash(nn.Module):
    """f(a) = A tanh(S a) with A = 1.7159, S = 2/3: f(1) = 1 and f(-1) = -1, and the gain
    is near 1 around the origin (paper, appendix A)."""

    def forward(self, x: tv.Tensor) -> tv.Tensor:
        return 1.7159 * F.tanh(x * (2.0 / 3.0))


class Subsample(nn.Module):
    """S2/S4: each map's 2x2 sums times one trainable coefficient, plus one trainable bias.
    (N, C, H, W) -> (N, C, H/2, W/2)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.kernel_size, self.stride = 2, 2  # declared for tinyvision.viz.receptive_field
        self.weight = nn.Parameter(tv.ones(channels))
        self.bias = nn.Parameter(tv.zeros(channels))
        bound = 2.4 / 4  # fan-in of a unit is the 4 summed inputs
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: tv.Tensor) -> tv.Tensor:
        sums = F.avg_pool2d(x, 2) * 4.0
        return sums * self.weight.reshape(1, -1, 1, 1) + self.bias.reshape(1, -1, 1, 1)


class SparseConv(nn.Module):
    """C3: output map i is a 5x5 convolution over only the input maps in ``table[i]``."""

    def __init__(self, table: tuple[tuple[int, ...], ...], kernel_size: int = 5) -> None:
        super().__init__()
        self.table = table
        self.maps = nn.ModuleList(nn.Conv2d(len(inputs), 1, kernel_size) for inputs in table)

    def forward(self, x: tv.Tensor) -> tv.Tensor:
        return tv.cat([conv(x[:, list(inputs)]) for conv, inputs in zip(self.maps, self.table)], dim=1)


class RBFOutput(nn.Module):
    """Euclidean RBF units: y_i = sum_j (x_j - w_ij)^2 with fixed +-1 codes w_i.

    The paper drew each code as a 7x12 bitmap of the class's character; those bitmaps are not
    published as data, so we use fixed, seeded random +-1 codes (a buffer, not trained). The
    forward returns -y, so that the largest value is the closest code and the result can go
    straight into ``cross_entropy`` as logits.
    """

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        codes = np.random.default_rng(1998).choice([-1.0, 1.0], size=(num_classes, in_features))
        self.register_buffer("codes", tv.tensor(codes.astype(np.float32)))

    def forward(self, x: tv.Tensor) -> tv.Tensor:
        diff = x.unsqueeze(1) - self.codes.unsqueeze(0)  # (N, classes, 84)
        return -(diff * diff).sum(-1)


class LeNet5(nn.Module):
    """The 1998 network. Input (N, 1, 32, 32); output (N, num_classes) negative RBF distances."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(in_channels, 6, 5)      # -> 6 x 28 x 28
        self.s2 = Subsample(6)                      # -> 6 x 14 x 14
        self.c3 = SparseConv(C3_TABLE)              # -> 16 x 10 x 10
        self.s4 = Subsample(16)                     # -> 16 x 5 x 5
        self.c5 = nn.Conv2d(16, 120, 5)             # -> 120 x 1 x 1
        self.f6 = nn.Linear(120, 84)
        self.output = RBFOutput(84, num_classes)
        self.squash = Squash()
        # the paper's init: U(-2.4 / F_in, 2.4 / F_in) for every weight and bias
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                nn.init.uniform_(m.weight, -2.4 / fan_in, 2.4 / fan_in)
                nn.init.uniform_(m.bias, -2.4 / fan_in, 2.4 / fan_in)

    def forward(self, x: tv.Tensor) -> tv.Tensor:
        x = self.squash(self.s2(self.c1(x)))  # the paper squashes after subsampling
        x = self.squash(self.s4(self.c3(x)))
        x = self.squash(self.c5(x)).flatten(1)
        x = self.squash(self.f6(x))
        return self.output(x)


class LeNet5Modern(nn.Module):
    """The textbook LeNet: conv(6,5) - ReLU - maxpool 2 - conv(16,5) - ReLU - maxpool 2 -
    120 - 84 - classes, fully connected C3. Input (N, 1, 32, 32); output logits."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, num_classes),
        )

    def forward(self, x: tv.Tensor) -> tv.Tensor:
        return self.classifier(self.features(x))


@register_model
def lenet5(num_classes: int = 10, **kwargs) -> LeNet5:
    """The paper's LeNet-5 (sparse C3, trainable subsampling, scaled tanh, RBF output)."""
    return LeNet5(num_classes=num_classes, **kwargs)


@register_model
def lenet5_modern(num_classes: int = 10, **kwargs) -> LeNet5Modern:
    """The textbook LeNet-5 (full C3, ReLU, max-pool, linear output)."""
    return LeNet5Modern(num_classes=num_classes, **kwargs)


