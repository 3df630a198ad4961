"""Receptive fields: which input pixels can influence one unit of a layer.

Each spatial layer with kernel k, stride s, padding p and dilation d (effective kernel
k_e = d (k - 1) + 1) maps the field of its input to the field of its output:

    r_out     = r_in + (k_e - 1) * j_in          field size in input pixels
    j_out     = j_in * s                         jump: input pixels between adjacent units
    start_out = start_in + ((k_e - 1) / 2 - p) * j_in    centre of unit 0, in input pixels

starting from r = 1, j = 1, start = 0 at the image. So a KxK stride-1 conv followed by a
PxP stride-2 pool sees 1 + (K - 1) + (P - 1) = P + K - 1 pixels: the study notes' rule.
Where branches meet (a residual add, an Inception concat) the field is the largest one.

``receptive_field`` computes this from the real computation: forward hooks tag the output of
every spatial module, and the autograd graph says which tensors each result came from, so
residual and parallel branches are followed exactly as the model runs them.
``empirical_receptive_field`` checks it by back-propagating from one output unit.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np

import tinyvision as tv
from tinyvision import nn
from tinyvision.functional._util import pair
from tinyvision.functional.conv import padding_widths
from tinyvision.kernels.dispatch import use_algorithm
from tinyvision.viz._model import evaluating


@dataclass(frozen=True)
class Field:
    size: float   # r: field size in input pixels
    jump: float   # j: effective stride
    start: float  # centre of the first unit, in input pixel coordinates

    def through(self, k: int, s: int, p: int, d: int = 1) -> "Field":
        ke = d * (k - 1) + 1
        return Field(self.size + (ke - 1) * self.jump, self.jump * s, self.start + ((ke - 1) / 2 - p) * self.jump)


def _pair(v: Any) -> tuple[int, int]:
    return pair("receptive_field", "kernel geometry", v)


def geometry(module: Any) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]] | None:
    """(kernel, stride, padding, dilation) per axis for a spatial module, else None.

    Any module with ``kernel_size`` and ``stride`` attributes counts (Conv2d, pooling, or a
    custom layer that declares them, e.g. LeNet-5's Subsample)."""
    if not (hasattr(module, "kernel_size") and hasattr(module, "stride")):
        return None
    k = _pair(module.kernel_size)
    s = _pair(module.stride if module.stride is not None else module.kernel_size)
    d = _pair(getattr(module, "dilation", 1))
    p = getattr(module, "padding", 0)
    if p == "same":  # stride 1; PyTorch puts the odd pixel on the right, the left gets the floor
        left, _, top, _ = padding_widths("same", k, d)
        p = (top, left)
    elif p == "valid":
        p = 0
    return k, s, _pair(p), d


def receptive_field(model: Any, input_size: tuple[int, ...]) -> list[dict[str, Any]]:
    """Per spatial layer, in execution order: name, output shape, field size, jump and start
    (height, width each). ``input_size`` is (C, H, W) or (N, C, H, W)."""
    shape = tuple(input_size) if len(input_size) == 4 else (1, *input_size)
    x = tv.zeros(shape, dtype=next((p.dtype for p in model.parameters()), None), requires_grad=True)
    tagged: dict[int, tuple[str, Any, Any]] = {}  # id(output tensor) -> (name, module, input tensor)
    order: list[tuple[str, Any]] = []
    handles = []
    for name, module in model.named_modules():
        if name and geometry(module) is not None:
            def hook(mod: Any, inputs: Any, output: Any, name: str = name) -> None:
                tagged[id(output)] = (name, mod, inputs[0])
                order.append((name, output))
            handles.append(module.register_forward_hook(hook))
    try:
        with evaluating(model) as m:
            m(x)
    finally:
        for h in handles:
            h.remove()

    fields: dict[int, tuple[Field, Field]] = {id(x): (Field(1, 1, 0), Field(1, 1, 0))}

    def field_of(t: Any) -> tuple[Field, Field] | None:
        """Fields of tensor t, walking back through the autograd graph (iteratively)."""
        stack = [t]
        while stack:
            cur = stack[-1]
            if id(cur) in fields:
                stack.pop()
                continue
            if id(cur) in tagged:  # a spatial module's output: through its geometry
                _, mod, inp = tagged[id(cur)]
                parents = [inp]
            elif cur.grad_fn is not None:  # any other op: the widest of its inputs
                parents = [p for p in cur.grad_fn.inputs if p is not None and p.grad_fn is not None or p is x]
            else:
                fields[id(cur)] = None  # a parameter or constant: no spatial extent
                stack.pop()
                continue
            missing = [p for p in parents if id(p) not in fields]
            if missing:
                stack.extend(missing)
                continue
            stack.pop()
            known = [fields[id(p)] for p in parents if fields[id(p)] is not None]
            if not known:
                fields[id(cur)] = None
            elif id(cur) in tagged:
                k, s, p, d = geometry(tagged[id(cur)][1])
                fh, fw = known[0]
                fields[id(cur)] = (fh.through(k[0], s[0], p[0], d[0]), fw.through(k[1], s[1], p[1], d[1]))
            else:
                fields[id(cur)] = max(known, key=lambda f: (f[0].size, f[1].size))
        return fields[id(t)]

    rows = []
    for name, out in order:
        f = field_of(out)
        rows.append({"layer": name, "output_shape": out.shape, "size": (f[0].size, f[1].size),
                     "jump": (f[0].jump, f[1].jump), "start": (f[0].start, f[1].start)})
    return rows


def _probe_copy(model: Any) -> Any:
    """A copy in which every unit passes gradient: positive weights, no ReLU cut-offs and
    average instead of max pooling (same geometry). Then the input gradient of one unit is
    non-zero exactly on the pixels that can reach it."""
    probe = copy.deepcopy(model).eval().double()
    for module in list(probe.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(module, child_name, nn.Identity())
            elif isinstance(child, nn.MaxPool2d):
                setattr(module, child_name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding,
                                                         ceil_mode=child.ceil_mode))
    with tv.no_grad():
        for p in probe.parameters():
            p.data[...] = np.abs(p.data) + 0.01
    return probe


class _Reached(Exception):
    """Raised by a forward hook to end the forward pass once the probed layer has run."""


def empirical_receptive_field(model: Any, input_size: tuple[int, ...], layer: str) -> tuple[int, int]:
    """Height and width of the input region whose gradient is non-zero for the centre unit
    of ``layer``'s output (summed over channels), on a probe copy of the model (see
    ``_probe_copy``). Clipped by the image border, as the analytic field should be too."""
    shape = tuple(input_size) if len(input_size) == 4 else (1, *input_size)
    probe = _probe_copy(model)
    captured: list[Any] = []

    def stop(module: Any, inputs: Any, output: Any) -> None:  # nothing after `layer` matters
        captured.append(output)
        raise _Reached

    handle = probe.get_submodule(layer).register_forward_hook(stop)
    x = tv.tensor(np.ones(shape), requires_grad=True)
    # im2col keeps the exact zeros this probe counts: Winograd's tile transforms would spread
    # rounding-sized values (1e-17) onto pixels outside the field
    with use_algorithm("conv", "im2col"):
        try:
            probe(x)
        except _Reached:
            pass
        finally:
            handle.remove()
        if not captured:
            raise ValueError(f"empirical_receptive_field: layer {layer!r} did not run in the forward pass")
        out = captured[0]
        h, w = out.shape[-2] // 2, out.shape[-1] // 2
        out[0, :, h, w].sum().backward()
    nonzero = np.argwhere(np.abs(x.grad.numpy()[0]).sum(0) > 0)
    return (int(np.ptp(nonzero[:, 0]) + 1), int(np.ptp(nonzero[:, 1]) + 1))


def clipped_extent(row: dict[str, Any], input_hw: tuple[int, int]) -> tuple[int, int]:
    """The analytic field of ``row``'s centre unit, clipped to the image: (height, width)."""
    extent = []
    for axis in range(2):
        centre_idx = row["output_shape"][-2 + axis] // 2
        centre = row["start"][axis] + centre_idx * row["jump"][axis]
        half = (row["size"][axis] - 1) / 2
        lo, hi = max(0, int(np.ceil(centre - half))), min(input_hw[axis] - 1, int(np.floor(centre + half)))
        extent.append(hi - lo + 1)
    return tuple(extent)
