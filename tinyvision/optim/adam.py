"""Adam and AdamW (with the AMSGrad variant), as ``torch.optim.Adam`` / ``torch.optim.AdamW``."""
from __future__ import annotations

from typing import Any

from tinyvision.autograd import Tensor
from tinyvision.kernels import compat
from tinyvision.optim.optimizer import Optimizer, ParamsT, check_non_negative


class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015): steps scaled per coordinate by a running RMS of the gradient.

    Per step t = 1, 2, ... with gradient g (torch's exact order and placement of eps):

        g <- -g                                  if maximize
        p <- p * (1 - lr * weight_decay)         if decoupled_weight_decay (AdamW)
        g <- g + weight_decay * p                otherwise (Adam's L2 penalty)
        m <- beta1 * m + (1 - beta1) * g         first moment (written m += (1-beta1)(g-m), torch's lerp)
        v <- beta2 * v + (1 - beta2) * g^2       second moment
        v_max <- max(v_max, v); use v_max for v  if amsgrad (Reddi et al., 2018)
        m_hat = m / (1 - beta1^t),  v_hat = v / (1 - beta2^t)   undo the zero start of m, v
        p <- p - lr * m_hat / (sqrt(v_hat) + eps)

    The last line is computed as torch does, ``p - (lr / (1 - beta1^t)) * m / (sqrt(v) /
    sqrt(1 - beta2^t) + eps)``: eps is added after the square root of the bias-corrected v.
    State per parameter: ``step`` (int), ``exp_avg`` (m), ``exp_avg_sq`` (v) and, with
    amsgrad, ``max_exp_avg_sq`` (v_max).
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *,
                 maximize: bool = False, decoupled_weight_decay: bool = False) -> None:
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        check_non_negative(group, "lr", "eps", "weight_decay")
        if len(group["betas"]) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {group['betas']!r}")
        for i, beta in enumerate(group["betas"]):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"betas[{i}] must be in [0, 1), got {beta!r}")

    def _update(self, p: Tensor, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        xp = compat.array_module(p.data)
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        if not state:
            state.update(step=0, exp_avg=xp.zeros_like(p.data), exp_avg_sq=xp.zeros_like(p.data))
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = xp.zeros_like(p.data)
        state["step"] += 1
        t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]

        g = -grad if group["maximize"] else grad  # never write into p.grad itself
        if wd != 0:
            if group["decoupled_weight_decay"]:
                p.data *= 1 - lr * wd
            else:
                g = g + wd * p.data
        # the same formulas, written in place into one scratch array: a ResNet-18 has 11 M
        # parameters, and every temporary costs a pass over memory (AdamW step 38 -> 28 ms)
        scratch = g - m
        scratch *= 1 - beta1
        m += scratch
        xp.multiply(g, 1 - beta2, out=scratch)  # (1 - beta2) g g, in torch's addcmul order
        scratch *= g
        v *= beta2
        v += scratch
        if group["amsgrad"]:
            xp.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            v = state["max_exp_avg_sq"]
        step_size = lr / (1 - beta1 ** t)
        denom = xp.sqrt(v, out=scratch)
        denom /= (1 - beta2 ** t) ** 0.5
        denom += eps
        xp.divide(m, denom, out=denom)  # step_size * (m / denom), in torch's addcdiv order
        denom *= step_size
        p.data -= denom


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter, 2019):
    ``p <- p * (1 - lr * weight_decay)`` before the Adam step, instead of adding
    ``weight_decay * p`` to the gradient (where Adam's scaling would shrink the decay of
    parameters with large gradients). Default weight_decay 1e-2, as torch."""

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)
