"""LeNet-5 has no torchvision model: its torch twin is written here, from the paper, and
``tinyvision.verify`` compares the two layer by layer (which also tests verify itself)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tinyvision.models import create_model
from tinyvision.models.lenet import C3_TABLE
from tinyvision.verify import verify


class TorchSubsample(torch.nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.kernel_size, self.stride = 2, 2
        self.weight = torch.nn.Parameter(torch.randn(c))
        self.bias = torch.nn.Parameter(torch.randn(c))

    def forward(self, x):
        return torch.nn.functional.avg_pool2d(x, 2) * 4 * self.weight[:, None, None] + self.bias[:, None, None]


class TorchSparseConv(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.maps = torch.nn.ModuleList(torch.nn.Conv2d(len(t), 1, 5) for t in C3_TABLE)

    def forward(self, x):
        return torch.cat([conv(x[:, list(t)]) for conv, t in zip(self.maps, C3_TABLE)], dim=1)


class TorchRBF(torch.nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.register_buffer("codes", torch.zeros(num_classes, 84))

    def forward(self, x):
        return -((x[:, None] - self.codes[None]) ** 2).sum(-1)


class TorchLeNet5(torch.nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.c1 = torch.nn.Conv2d(1, 6, 5)
        self.s2 = TorchSubsample(6)
        self.c3 = TorchSparseConv()
        self.s4 = TorchSubsample(16)
        self.c5 = torch.nn.Conv2d(16, 120, 5)
        self.f6 = torch.nn.Linear(120, 84)
        self.output = TorchRBF(num_classes)

    def forward(self, x):
        squash = lambda a: 1.7159 * torch.tanh(a * 2 / 3)  # noqa: E731
        x = squash(self.s2(self.c1(x)))
        x = squash(self.s4(self.c3(x)))
        x = squash(self.f6(squash(self.c5(x)).flatten(1)))
        return self.output(x)


@pytest.fixture()
def pair():
    torch.manual_seed(0)
    ref = TorchLeNet5()
    ours = create_model("lenet5")
    with torch.no_grad():  # the fixed +-1 codes are ours; give torch the same ones
        ref.output.codes.copy_(torch.tensor(ours.output.codes.numpy()))
    return ours.eval(), ref.eval()


def test_lenet5_state_dict_matches_the_twin(pair) -> None:
    ours, ref = pair
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert sum(p.numel() for p in ref.parameters()) == 60_000  # the paper's count, independently


def test_verify_reports_small_errors_for_a_faithful_port(pair) -> None:
    ours, ref = pair
    x = np.random.default_rng(0).standard_normal((2, 1, 32, 32))
    f32, f64 = verify(ours, ref, x, verbose=False)
    assert f64.max_output_error < 1e-10 * max(f64.logits_scale, 1)
    assert f64.max_grad_rel_error < 1e-10
    assert f32.max_output_error < 1e-4 * max(f32.logits_scale, 1)
    assert f32.max_grad_rel_error < 1e-4
    assert {"c1", "s2", "c3", "s4", "c5", "f6", "(logits)"} <= set(f64.outputs)


def test_verify_pinpoints_a_broken_layer(pair) -> None:
    ours, ref = pair
    original = ours.s4.forward
    ours.s4.forward = lambda x: original(x) * 1.01  # a 1% bug in S4
    x = np.random.default_rng(0).standard_normal((2, 1, 32, 32))
    f64 = verify(ours, ref, x, dtypes=("float64",), verbose=False)[0]
    assert f64.outputs["c3"] < 1e-10
    assert f64.outputs["s4"] > 1e-3
