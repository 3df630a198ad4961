"""Whole models, tinyvision vs PyTorch, same threads, float32, one process.

    python -m benchmarks.models            # needs torchvision and timm for the torch side

Cases (the nn/model-zoo issue's bar):
  ResNet-18, CIFAR stem, training step (forward, backward, SGD) at batch 32 on 32x32
  ViT-Tiny with 4x4 patches on 32x32, training step at batch 32
  ResNet-18 and ViT-Ti/16 at 224x224, forward at batch 8
Both sides get the same weights (copied through the state_dict). The "peak MiB" column is the
peak of NumPy allocations during one step (tracemalloc), the workspace a step needs on top of
the weights; torch's allocator is not traced, so its column stays empty.
"""
from __future__ import annotations

import sys
import tracemalloc
from typing import Any, Callable

import numpy as np

import tinyvision as tv
import tinyvision.nn.functional as F
from benchmarks.runner import Report, set_threads
from tinyvision import optim
from tinyvision.models import create_model


def _torch_models() -> dict[str, Callable[[], Any]]:
    import timm
    import torch
    import torchvision

    def cifar_resnet18() -> Any:
        m = torchvision.models.resnet18(num_classes=10)
        m.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        m.maxpool = torch.nn.Identity()
        return m

    return {
        "resnet18_cifar": cifar_resnet18,
        "vit_tiny_patch4_32": lambda: timm.create_model("vit_tiny_patch16_224", num_classes=10, img_size=32, patch_size=4),
        "resnet18_224": lambda: torchvision.models.resnet18(num_classes=1000),
        "vit_tiny_patch16_224": lambda: timm.create_model("vit_tiny_patch16_224", num_classes=1000),
    }


CASES = {  # name: (tinyvision builder, batch, image size, train step?)
    "resnet18_cifar": (lambda: create_model("resnet18", num_classes=10, cifar_stem=True), 32, 32, True),
    "vit_tiny_patch4_32": (lambda: create_model("vit_tiny_patch16_224", num_classes=10, img_size=32, patch_size=4), 32, 32, True),
    "resnet18_224": (lambda: create_model("resnet18"), 8, 224, False),
    "vit_tiny_patch16_224": (lambda: create_model("vit_tiny_patch16_224"), 8, 224, False),
}


def _peak_mib(fn: Callable[[], Any]) -> float:
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def run(cases: list[str] | None = None) -> Report:
    import torch

    set_threads(2)
    report = Report("models")
    torch_builders = _torch_models()
    for name, (build, batch, size, train) in CASES.items():
        if cases and name not in cases:
            continue
        ref = torch_builders[name]()
        ours = build()
        ours.load_state_dict(ref.state_dict())
        rng = np.random.default_rng(0)
        x = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
        y = rng.integers(0, 10, batch)
        xt, yt = torch.tensor(x), torch.tensor(y)
        xo, yo = tv.tensor(x), tv.tensor(y)
        if train:
            ref.train()
            ours.train()
            t_opt = torch.optim.SGD(ref.parameters(), lr=0.01, momentum=0.9)
            o_opt = optim.SGD(ours.parameters(), lr=0.01, momentum=0.9)

            def torch_step() -> None:
                t_opt.zero_grad()
                torch.nn.functional.cross_entropy(ref(xt), yt).backward()
                t_opt.step()

            def ours_step() -> None:
                o_opt.zero_grad()
                F.cross_entropy(ours(xo), yo).backward()
                o_opt.step()
            case = f"{name} train step B={batch}"
        else:
            ref.eval()
            ours.eval()

            def torch_step() -> None:
                with torch.no_grad():
                    ref(xt)

            def ours_step() -> None:
                with tv.no_grad():
                    ours(xo)
            case = f"{name} forward B={batch}"
        report.add(case, "torch", torch_step, repeats=5, warmup=1)
        report.add(case, "tinyvision", ours_step, repeats=5, warmup=1, peak_mib=f"{_peak_mib(ours_step):.0f}")
        print(report.rows[-2].case, f"torch {report.rows[-2].ms:.0f} ms, tinyvision {report.rows[-1].ms:.0f} ms", flush=True)
    return report


if __name__ == "__main__":
    run(sys.argv[1:] or None).print_and_save()
