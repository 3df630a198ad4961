"""LeNet-5 has no torchvision model: its torch twin is written from the paper in
tinyvision/verify.py (``torch_lenet5``, what ``tinyvision verify lenet5`` uses), and
``tinyvision.verify`` compares the two layer by layer (which also tests verify itself)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tinyvision.models import create_model
from tinyvision.verify import torch_lenet5, verify


@pytest.fixture()
def pair():
    torch.manual_seed(0)
    ref = torch_lenet5()
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
