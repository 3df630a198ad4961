"""Taking feature maps out of a zoo model by name, as torchvision's ``IntermediateLayerGetter``."""
from __future__ import annotations

from collections import OrderedDict

from tinyvision import nn
from tinyvision.autograd.tensor import Tensor


class IntermediateLayerGetter(nn.ModuleDict):
    """Run ``model``'s children in order and return the outputs of some of them.

    ``return_layers`` maps a child's name to the name of its output, e.g.
    ``{"layer4": "out", "layer3": "aux"}`` on a ResNet gives ``{"aux": (N, 1024, h, w),
    "out": (N, 2048, h', w')}`` in the order the layers run. Children after the last returned
    one (a ResNet's ``avgpool`` and ``fc``) are dropped. The children keep their names, so the
    state_dict keys are the model's (``conv1.weight``, ``layer1.0.bn1.running_mean``, ...).

    Only for models whose forward is their children applied one after another (ResNet, VGG's
    ``features``); a forward that does more (a flatten, a skip) is not seen here.
    """

    def __init__(self, model: nn.Module, return_layers: dict[str, str]) -> None:
        names = [name for name, _ in model.named_children()]
        missing = [k for k in return_layers if k not in names]
        if missing:
            raise ValueError(f"IntermediateLayerGetter: return_layers {missing} are not children of "
                             f"{type(model).__name__}; its children are {names}")
        wanted = set(return_layers)
        layers = OrderedDict()
        for name, module in model.named_children():
            layers[name] = module
            wanted.discard(name)
            if not wanted:
                break
        super().__init__(layers)
        self.return_layers = dict(return_layers)

    def forward(self, x: Tensor) -> "OrderedDict[str, Tensor]":
        out: OrderedDict[str, Tensor] = OrderedDict()
        for name, module in self.items():
            x = module(x)
            if name in self.return_layers:
                out[self.return_layers[name]] = x
        return out
