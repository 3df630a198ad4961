"""Verify a tinyvision model against its PyTorch twin, layer by layer.

``verify(model, reference, x)`` copies the reference's weights into ``model`` (the same
state_dict keys), runs the same input through both in float32 and float64, and reports:

* per module (matched by its dotted name): the max abs error of its output;
* per parameter: the max abs and relative error of the gradient of one scalar loss,
  ``sum(logits * u)`` with a fixed random ``u``, so that every logit matters.

The first layer whose error jumps is where a port went wrong. Needs PyTorch (and whatever
built ``reference``, e.g. torchvision), never at import time.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

import tinyvision as tv


@dataclass
class VerifyResult:
    """Errors for one dtype: ``outputs[name]`` = max abs error of that module's output,
    ``grads[name]`` = (max abs error, max relative error) of that parameter's gradient."""

    dtype: str
    outputs: dict[str, float] = field(default_factory=dict)
    grads: dict[str, tuple[float, float]] = field(default_factory=dict)
    logits_scale: float = 1.0

    @property
    def max_output_error(self) -> float:
        return max(self.outputs.values(), default=0.0)

    @property
    def max_grad_rel_error(self) -> float:
        return max((r for _, r in self.grads.values()), default=0.0)

    def table(self) -> str:
        lines = [f"-- {self.dtype}: module outputs (max abs error) --"]
        width = max((len(n) for n in list(self.outputs) + list(self.grads)), default=10)
        lines += [f"{name:<{width}}  {err:.3e}" for name, err in self.outputs.items()]
        lines.append(f"-- {self.dtype}: parameter gradients (max abs / max rel error) --")
        lines += [f"{name:<{width}}  {a:.3e}  {r:.3e}" for name, (a, r) in self.grads.items()]
        return "\n".join(lines)


def _capture(named_modules: Any, store: dict, to_numpy: Any) -> list:
    """Forward hooks that record each module's (first) tensor output under its name."""
    handles = []
    for name, module in named_modules:
        if not name:
            continue

        def hook(mod: Any, inputs: Any, output: Any, name: str = name) -> None:
            out = output[0] if isinstance(output, (tuple, list)) else output
            if hasattr(out, "shape"):
                store[name] = to_numpy(out)

        handles.append(module.register_forward_hook(hook))
    return handles


def verify(model: Any, reference: Any, x: np.ndarray, dtypes: tuple[str, ...] = ("float32", "float64"),
           seed: int = 0, verbose: bool = True) -> list[VerifyResult]:
    """Compare ``model`` (tinyvision) with ``reference`` (torch.nn.Module) on input ``x``.

    Both are put in their current train/eval mode as given; set ``eval()`` on both for
    deterministic layers (dropout), or use train mode to check BatchNorm batch statistics.
    Returns one :class:`VerifyResult` per dtype and prints the tables when ``verbose``.
    """
    import torch

    state = {k: v.detach().cpu().double().numpy() if v.is_floating_point() else v.detach().cpu().numpy()
             for k, v in reference.state_dict().items()}
    results = []
    for dtype in dtypes:
        tdtype = getattr(torch, dtype)
        reference.to(tdtype)
        model.to(np.dtype(dtype))
        model.load_state_dict({k: v.astype(dtype) if v.dtype.kind == "f" else v for k, v in state.items()})
        reference.load_state_dict({k: torch.tensor(v) for k, v in state.items()})
        ours_out: dict = {}
        theirs_out: dict = {}
        handles = _capture(model.named_modules(), ours_out, lambda t: t.detach().numpy().astype(np.float64))
        # clone: torchvision's ReLU(inplace=True) would overwrite a captured conv/BN output
        # (in float64 .double() is no copy), and the table would show the post-ReLU values
        theirs = _capture(reference.named_modules(), theirs_out, lambda t: t.detach().double().clone().numpy())
        try:
            logits = model(tv.tensor(x.astype(dtype)))
            ref_logits = reference(torch.tensor(x, dtype=tdtype))
        finally:
            for h in handles + theirs:
                h.remove()
        logits = logits[0] if isinstance(logits, tuple) else logits
        ref_logits = ref_logits[0] if isinstance(ref_logits, tuple) else ref_logits
        u = np.random.default_rng(seed).standard_normal(ref_logits.shape)
        model.zero_grad()
        reference.zero_grad()
        (logits * tv.tensor(u.astype(dtype))).sum().backward()
        (ref_logits * torch.tensor(u, dtype=tdtype)).sum().backward()

        result = VerifyResult(dtype, logits_scale=float(np.abs(ref_logits.detach().double().numpy()).max()))
        for name, ref in theirs_out.items():
            if name in ours_out and ours_out[name].shape == ref.shape:
                result.outputs[name] = float(np.abs(ours_out[name] - ref).max()) if ref.size else 0.0
        result.outputs["(logits)"] = float(np.abs(logits.detach().numpy() - ref_logits.detach().double().numpy()).max())
        ref_params = dict(reference.named_parameters())
        for name, p in model.named_parameters():
            rp = ref_params.get(name)
            if rp is None or rp.grad is None or p.grad is None:
                continue
            g, rg = p.grad.numpy().astype(np.float64), rp.grad.double().numpy()
            err = np.abs(g - rg)
            result.grads[name] = (float(err.max()), float(err.max() / max(np.abs(rg).max(), 1e-30)))
        results.append(result)
        if verbose:
            print(result.table())
    return results


def torch_lenet5(num_classes: int = 10) -> Any:
    """LeNet-5 in plain PyTorch, written from the paper (torchvision has no LeNet): C1 conv 5x5,
    S2/S4 trainable subsampling (2x2 sum times a weight plus a bias per map), C3 the paper's
    sparse table of 5x5 convs, C5 conv 5x5 to 120, F6 linear to 84, scaled tanh
    1.7159 tanh(2a/3) after each, and Euclidean RBF outputs -||x - code||^2 on fixed codes
    (a buffer: copy tinyvision's before comparing). The twin that ``tinyvision verify lenet5``
    compares with, so that a clean clone (torch, no torchvision) can run it."""
    import torch

    from tinyvision.models.lenet import C3_TABLE

    class Subsample(torch.nn.Module):
        def __init__(self, c: int) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(c))
            self.bias = torch.nn.Parameter(torch.randn(c))

        def forward(self, x):  # the 2x2 sum = 4 x the 2x2 mean
            return torch.nn.functional.avg_pool2d(x, 2) * 4 * self.weight[:, None, None] + self.bias[:, None, None]

    class SparseConv(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.maps = torch.nn.ModuleList(torch.nn.Conv2d(len(t), 1, 5) for t in C3_TABLE)

        def forward(self, x):
            return torch.cat([conv(x[:, list(t)]) for conv, t in zip(self.maps, C3_TABLE)], dim=1)

    class RBF(torch.nn.Module):
        def __init__(self, n: int) -> None:
            super().__init__()
            self.register_buffer("codes", torch.zeros(n, 84))

        def forward(self, x):
            return -((x[:, None] - self.codes[None]) ** 2).sum(-1)

    class LeNet5(torch.nn.Module):
        def __init__(self, n: int) -> None:
            super().__init__()
            self.c1 = torch.nn.Conv2d(1, 6, 5)
            self.s2 = Subsample(6)
            self.c3 = SparseConv()
            self.s4 = Subsample(16)
            self.c5 = torch.nn.Conv2d(16, 120, 5)
            self.f6 = torch.nn.Linear(120, 84)
            self.output = RBF(n)

        def forward(self, x):
            squash = lambda a: 1.7159 * torch.tanh(a * 2 / 3)  # noqa: E731
            x = squash(self.s2(self.c1(x)))
            x = squash(self.s4(self.c3(x)))
            x = squash(self.f6(squash(self.c5(x)).flatten(1)))
            return self.output(x)

    return LeNet5(num_classes)


# models whose PyTorch twin lives in this repository (only torch is needed to verify them)
TWINS = {"lenet5": torch_lenet5}
INSTALL = "pip install torchvision timm (into the same environment as torch)"


def _require(module: str, name: str) -> Any:
    """Import torch/torchvision/timm, or exit with one line saying how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError:
        raise SystemExit(f"verify {name} compares with {module}, which is not installed: {INSTALL}. "
                         f"Without it: tinyvision verify {', '.join(TWINS)} (their twins are in the repository)") from None


def verify_against_reference(name: str, image_size: int | None = None, num_classes: int = 10,
                             seed: int = 0) -> list[VerifyResult]:
    """``tinyvision verify NAME``: build the PyTorch twin (in this repository for LeNet-5, else
    the real torchvision CNN or timm ViT), copy its random weights into ours, and print the
    layer-by-layer tables. Needs torch; torchvision or timm for the models they define."""
    from tinyvision.models import create_model, list_models

    if name not in list_models():
        raise SystemExit(f"verify: unknown model {name!r}; `tinyvision models` lists them")
    torch = _require("torch", name)
    torch.manual_seed(seed)
    channels = 3
    if name in TWINS:
        model = create_model(name, num_classes=num_classes)
        reference = TWINS[name](num_classes)
        with torch.no_grad():  # LeNet-5's fixed RBF codes are ours: give the twin the same ones
            reference.output.codes.copy_(torch.tensor(model.output.codes.numpy()))
        size, channels = image_size or 32, 1
    elif name.startswith("vit"):
        reference = _require("timm", name).create_model(name, pretrained=False, num_classes=num_classes)
        size = image_size or 224
    else:
        torchvision = _require("torchvision", name)
        if not hasattr(torchvision.models, name):
            raise SystemExit(f"verify: torchvision has no model {name!r} to compare with")
        reference = getattr(torchvision.models, name)(num_classes=num_classes)
        size = image_size or 64
    if name not in TWINS:  # built after the reference's library was found
        model = create_model(name, num_classes=num_classes)
    x = np.random.default_rng(seed).standard_normal((2, channels, size, size))
    return verify(model.eval(), reference.eval(), x)
