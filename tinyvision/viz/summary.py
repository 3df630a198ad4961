"""``summary(model, input_size)``: a table of every layer with its output shape, parameters,
FLOPs, activation memory and the im2col workspace a convolution needs.

FLOPs count a multiply-add as 2: a conv is 2 N C_out H_out W_out (C_in / groups) k_h k_w, a
linear layer 2 (rows) in out, attention 2 * 2 N heads L^2 d (q k^T and attn v). Other layers
(norms, activations, pooling) are memory-bound and counted as 0.
"""
from __future__ import annotations

from typing import Any

import numpy as np

import tinyvision as tv
from tinyvision import nn
from tinyvision.models.vit import Attention
from tinyvision.viz._model import evaluating


def _flops(module: Any, inputs: tuple, out: tv.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        n, c_out, h, w = out.shape
        kh, kw = module.weight.shape[-2:]
        return 2 * n * c_out * h * w * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return 2 * (out.numel() // module.out_features) * module.in_features * module.out_features
    if isinstance(module, Attention):
        n, length, _ = out.shape
        return 4 * n * module.num_heads * length * length * module.head_dim
    return 0


def _workspace(module: Any, out: tv.Tensor) -> int:
    """Bytes of the im2col matrix (rows = output pixels, cols = C_in/groups * k_h * k_w);
    a 1x1 stride-1 conv needs none: its input already is that matrix."""
    if not isinstance(module, nn.Conv2d):
        return 0
    kh, kw = module.weight.shape[-2:]
    if kh == kw == 1 and tuple(np.broadcast_to(module.stride, 2)) == (1, 1):
        return 0
    n, _, h, w = out.shape
    return n * h * w * (module.in_channels // module.groups) * kh * kw * out.data.itemsize


def summary(model: Any, input_size: tuple[int, ...], print_table: bool = True) -> dict[str, Any]:
    """Run a zero input of ``input_size`` ((C, H, W) or (N, C, H, W)) and tabulate each leaf
    layer (and each attention block), then the parameters that containers hold directly
    (a ViT's class token and position embedding). Returns {"rows": [...], "total_params", "total_flops",
    "total_activation_bytes", "max_workspace_bytes"}."""
    shape = tuple(input_size) if len(input_size) == 4 else (1, *input_size)
    rows: list[dict[str, Any]] = []
    handles = []
    hooked = set()
    for name, module in model.named_modules():
        leaf = not any(True for _ in module.children())
        if name and (leaf or isinstance(module, Attention)):
            hooked.add(name)
            def hook(mod: Any, inputs: Any, out: Any, name: str = name) -> None:
                out = out[0] if isinstance(out, tuple) else out
                rows.append({"layer": name, "type": type(mod).__name__, "output_shape": out.shape,
                             "params": sum(p.numel() for p in mod.parameters(recurse=False)),
                             "flops": _flops(mod, inputs, out), "activation_bytes": out.numel() * out.data.itemsize,
                             "workspace_bytes": _workspace(mod, out)})
            handles.append(module.register_forward_hook(hook))
    dtype = next((p.dtype for p in model.parameters()), None)
    try:
        with tv.no_grad(), evaluating(model) as m:
            m(tv.zeros(shape, dtype=dtype))
    finally:
        for h in handles:
            h.remove()
    for name, module in model.named_modules():  # parameters a container holds itself (ViT's pos_embed)
        own = sum(p.numel() for p in module.parameters(recurse=False))
        if own and name not in hooked:
            rows.append({"layer": name or "(model)", "type": type(module).__name__, "output_shape": "-",
                         "params": own, "flops": 0, "activation_bytes": 0, "workspace_bytes": 0})
    result = {"rows": rows, "total_params": sum(p.numel() for p in model.parameters()),
              "total_flops": sum(r["flops"] for r in rows),
              "total_activation_bytes": sum(r["activation_bytes"] for r in rows),
              "max_workspace_bytes": max((r["workspace_bytes"] for r in rows), default=0)}
    if print_table:
        print(format_summary(result))
    return result


def format_summary(result: dict[str, Any]) -> str:
    head = f"{'layer':<34} {'type':<18} {'output':<20} {'params':>11} {'MFLOPs':>10} {'act KiB':>9} {'im2col KiB':>10}"
    lines = [head, "-" * len(head)]
    for r in result["rows"]:
        lines.append(f"{r['layer']:<34} {r['type']:<18} {str(r['output_shape']):<20} {r['params']:>11,} "
                     f"{r['flops'] / 1e6:>10.2f} {r['activation_bytes'] / 1024:>9.1f} {r['workspace_bytes'] / 1024:>10.1f}")
    lines.append("-" * len(head))
    lines.append(f"total params {result['total_params']:,}   GFLOPs {result['total_flops'] / 1e9:.3f}   "
                 f"activations {result['total_activation_bytes'] / 2**20:.1f} MiB   "
                 f"largest im2col workspace {result['max_workspace_bytes'] / 2**20:.1f} MiB")
    return "\n".join(lines)
