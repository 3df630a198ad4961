"""Stochastic gradient descent with momentum, as ``torch.optim.SGD``."""
from __future__ import annotations

from typing import Any

from tinyvision.autograd import Tensor
from tinyvision.optim.optimizer import Optimizer, ParamsT, check_non_negative


class SGD(Optimizer):
    r"""SGD: ``p <- p - lr * d``, where d is the gradient, or a running sum of gradients.

    Per step, with g the gradient of the loss with respect to p (torch's exact order):

        g <- -g                       if maximize      (climb instead of descend)
        g <- g + weight_decay * p                      (L2 penalty wd/2 |p|^2 folded into g)
        b <- g                        on the first step (no dampening then)
        b <- momentum * b + (1 - dampening) * g        afterwards
        d <- g + momentum * b         if nesterov      (look ahead along the new velocity)
        d <- b                        otherwise; d = g when momentum == 0
        p <- p - lr * d

    The buffer ``b`` is ``state[p]["momentum_buffer"]``. Nesterov needs momentum > 0 and
    dampening == 0 (as in torch).
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
                 *, maximize: bool = False) -> None:
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        check_non_negative(group, "lr", "momentum", "weight_decay")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                "nesterov=True needs momentum > 0 and dampening == 0, got "
                f"momentum={group['momentum']!r}, dampening={group['dampening']!r}"
            )

    def _update(self, p: Tensor, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        momentum = group["momentum"]
        g = -grad if group["maximize"] else grad  # never write into p.grad itself
        if group["weight_decay"] != 0:
            g = g + group["weight_decay"] * p.data
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= momentum
                buf += (1 - group["dampening"]) * g
            g = g + momentum * buf if group["nesterov"] else buf
        p.data -= group["lr"] * g
