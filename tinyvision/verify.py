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


def verify_against_reference(name: str, image_size: int | None = None, num_classes: int = 10,
                             seed: int = 0) -> list[VerifyResult]:
    """``tinyvision verify NAME``: build the real torchvision (CNNs) or timm (ViT) model,
    copy its random weights into ours, and print the layer-by-layer tables. Needs torch and
    torchvision or timm (a separate environment; `make test` never needs them)."""
    import torch

    from tinyvision.models import create_model

    torch.manual_seed(seed)
    if name.startswith("vit"):
        import timm

        reference = timm.create_model(name, pretrained=False, num_classes=num_classes)
        size = image_size or 224
    else:
        import torchvision

        if not hasattr(torchvision.models, name):
            raise SystemExit(f"verify: torchvision has no model {name!r} to compare with")
        reference = getattr(torchvision.models, name)(num_classes=num_classes)
        size = image_size or 64
    model = create_model(name, num_classes=num_classes)
    x = np.random.default_rng(seed).standard_normal((2, 3, size, size))
    return verify(model.eval(), reference.eval(), x)
