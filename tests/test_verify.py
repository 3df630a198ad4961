"""tinyvision.verify against a torch twin built here (torch only, no torchvision); tests/test_lenet.py
checks that it pinpoints a broken layer."""
from __future__ import annotations

import numpy as np
import torch

from tinyvision import nn
from tinyvision.verify import verify


def test_verify_sees_pre_relu_outputs_of_inplace_relu_models_in_both_dtypes() -> None:
    """torchvision puts ReLU(inplace=True) after BatchNorm: the captured BN output must be
    copied before the ReLU overwrites it, in float64 too (where .double() copies nothing)."""
    torch.manual_seed(0)
    reference = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(inplace=True),
                                    torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 5)).eval()
    with torch.no_grad():
        reference[1].running_mean.normal_()  # BN output then has many negatives for the ReLU to clip
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(inplace=True), nn.Flatten(),
                          nn.Linear(4 * 4 * 4, 5)).eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6))
    results = verify(model, reference, x, verbose=False)
    for result, tol in zip(results, (1e-5, 1e-12)):
        assert set(result.outputs) == {"0", "1", "2", "3", "4", "(logits)"}
        assert result.max_output_error < tol, result.table()
        assert set(result.grads) == {"0.weight", "0.bias", "1.weight", "1.bias", "4.weight", "4.bias"}
        assert result.max_grad_rel_error < tol, result.table()

