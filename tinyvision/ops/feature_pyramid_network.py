"""Feature Pyramid Network (Lin et al. 2017) with torchvision.ops's classes and state_dict keys.

A backbone's deep maps know *what* is in the image but are coarse; its early maps are sharp but
know little. FPN gives every level both: a top-down pathway upsamples the coarser merged map
(nearest neighbour, x2) and adds a 1x1 "lateral" projection of the backbone map at that level;
a 3x3 conv then smooths each sum into the output map. All outputs have ``out_channels``
channels, so that one detection head can run on every level:

    inner_L = lateral_L(C_L)                          (the coarsest level)
    inner_l = lateral_l(C_l) + upsample(inner_{l+1})  (l = L-1 .. 1)
    P_l     = layer_l(inner_l)

Extra levels come from ``extra_blocks``: ``LastLevelMaxPool`` (Faster/Mask R-CNN's "pool" level,
a stride-2 subsample of the last output) or ``LastLevelP6P7`` (RetinaNet's P6 and P7, two stride-2
3x3 convs, with a ReLU between them).

Keys as torchvision's: ``inner_blocks.{i}.0.weight``, ``layer_blocks.{i}.0.weight`` (each block is
a Sequential holding the conv and, with ``norm_layer``, the norm), ``extra_blocks.p6.weight``...
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable

from tinyvision import functional as F
from tinyvision.autograd.tensor import Tensor
from tinyvision.nn import Conv2d, Module, ModuleList, Sequential, init


def _conv_block(in_channels: int, out_channels: int, kernel_size: int,
                norm_layer: Callable[..., Module] | None) -> Sequential:
    """torchvision's Conv2dNormActivation without activation: conv (bias only without a norm)
    then the norm."""
    conv = Conv2d(in_channels, out_channels, kernel_size, padding=(kernel_size - 1) // 2, bias=norm_layer is None)
    return Sequential(conv) if norm_layer is None else Sequential(conv, norm_layer(out_channels))


class ExtraFPNBlock(Module):
    """Base class of the blocks that add levels after the pyramid: ``forward(results, x, names)``
    gets the FPN outputs, the backbone inputs and the level names, and returns the extended
    outputs and names."""

    def forward(self, results: list[Tensor], x: list[Tensor], names: list[str]) -> tuple[list[Tensor], list[str]]:
        raise NotImplementedError


class LastLevelMaxPool(ExtraFPNBlock):
    """Adds level "pool": ``max_pool2d(P_last, kernel_size=1, stride=2)``, i.e. every other pixel."""

    def forward(self, results, x, names):
        return results + [F.max_pool2d(results[-1], kernel_size=1, stride=2, padding=0)], names + ["pool"]


class LastLevelP6P7(ExtraFPNBlock):
    """Adds RetinaNet's "p6" = conv3x3/2(P5 or C5) and "p7" = conv3x3/2(relu(p6)). P5 is used
    when ``in_channels == out_channels`` (torchvision's rule), C5 otherwise."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.p6 = Conv2d(in_channels, out_channels, 3, 2, 1)
        self.p7 = Conv2d(out_channels, out_channels, 3, 2, 1)
        for module in (self.p6, self.p7):
            init.kaiming_uniform_(module.weight, a=1)
            init.constant_(module.bias, 0)
        self.use_P5 = in_channels == out_channels

    def forward(self, results, x, names):
        p6 = self.p6(results[-1] if self.use_P5 else x[-1])
        p7 = self.p7(F.relu(p6))
        return results + [p6, p7], names + ["p6", "p7"]


class FeaturePyramidNetwork(Module):
    """FPN over backbone maps given as an ordered dict, finest first.

    in_channels_list: the channels of each input map; out_channels: of every output map.
    forward({name: (N, C_i, H_i, W_i)}) -> OrderedDict({name: (N, out_channels, H_i, W_i)}, plus
    the extra block's levels).
    """

    def __init__(self, in_channels_list: list[int], out_channels: int, extra_blocks: ExtraFPNBlock | None = None,
                 norm_layer: Callable[..., Module] | None = None) -> None:
        super().__init__()
        if any(c <= 0 for c in in_channels_list):
            raise ValueError(f"FeaturePyramidNetwork: in_channels_list must be positive, got {in_channels_list}")
        if extra_blocks is not None and not isinstance(extra_blocks, ExtraFPNBlock):
            raise TypeError(f"FeaturePyramidNetwork: extra_blocks must be an ExtraFPNBlock, got "
                            f"{type(extra_blocks).__name__}")
        self.inner_blocks = ModuleList([_conv_block(c, out_channels, 1, norm_layer) for c in in_channels_list])
        self.layer_blocks = ModuleList([_conv_block(out_channels, out_channels, 3, norm_layer)
                                        for _ in in_channels_list])
        for m in self.modules():  # before the extra blocks, which initialise themselves
            if isinstance(m, Conv2d):
                init.kaiming_uniform_(m.weight, a=1)
                if m.bias is not None:
                    init.constant_(m.bias, 0)
        self.extra_blocks = extra_blocks

    def forward(self, x: "OrderedDict[str, Tensor]") -> "OrderedDict[str, Tensor]":
        if len(x) != len(self.inner_blocks):
            raise ValueError(f"FeaturePyramidNetwork: expected {len(self.inner_blocks)} feature maps, got {len(x)} "
                             f"({list(x.keys())})")
        names, maps = list(x.keys()), list(x.values())
        last_inner = self.inner_blocks[-1](maps[-1])
        results = [self.layer_blocks[-1](last_inner)]
        for idx in range(len(maps) - 2, -1, -1):           # top-down: coarse to fine
            lateral = self.inner_blocks[idx](maps[idx])
            top_down = F.interpolate(last_inner, size=tuple(lateral.shape[-2:]), mode="nearest")
            last_inner = lateral + top_down
            results.insert(0, self.layer_blocks[idx](last_inner))
        if self.extra_blocks is not None:
            results, names = self.extra_blocks(results, maps, names)
        return OrderedDict(zip(names, results))
