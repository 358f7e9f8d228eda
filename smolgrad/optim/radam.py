"""RAdam."""

from __future__ import annotations

import math
from typing import Any, Iterable

from ..tensor import Tensor
from .optimizer import Optimizer, check_betas, check_nonnegative


class RAdam(Optimizer):
    """RAdam (rectified Adam; Liu et al.), as torch.optim.RAdam, with t the parameter's
    step count:

        g = -grad if maximize else grad
        p = p * (1 - lr * weight_decay)                  (decoupled_weight_decay)
        g = g + weight_decay * p                         (otherwise, if weight_decay != 0)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1^t)
        rho_inf = 2 / (1 - beta2) - 1; rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)
        if rho_t > 5:
            r = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
            p = p - lr * m_hat * r * sqrt(1 - beta2^t) / (sqrt(v) + eps)
        else:
            p = p - lr * m_hat

    Both branches are one kernel, p - m * (a / (sqrt(v) + eps) + b), with the step's
    scalars a and b zero in the branch not taken (as PyTorch's foreach implementation
    does), so the update is replayed whichever branch a step takes.
    State: "step", "exp_avg" (m) and "exp_avg_sq" (v)."""

    _state_keys = ("exp_avg", "exp_avg_sq")
    _state_scalars = ("step",)

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = False,
        *,
        maximize: bool = False,
    ):
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        check_nonnegative(group, "lr", "eps", "weight_decay")
        check_betas(group)

    def _prepare(self, param: Tensor, state: dict, group: dict) -> dict[str, float]:
        if "exp_avg" not in state:
            state["step"] = 0
            state["exp_avg"] = self._zeros_state(param)
            state["exp_avg_sq"] = self._zeros_state(param)
        step = state["step"] = state["step"] + 1
        (beta1, beta2), lr = group["betas"], group["lr"]
        bias_correction1 = 1.0 - beta1**step
        bias_correction2 = 1.0 - beta2**step
        rho_inf = 2.0 / (1.0 - beta2) - 1.0
        rho_t = rho_inf - 2.0 * step * beta2**step / bias_correction2
        if rho_t > 5.0:
            rect = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            scalars = {"adaptive": lr * rect * math.sqrt(bias_correction2) / bias_correction1, "plain": 0.0}
        else:
            scalars = {"adaptive": 0.0, "plain": lr / bias_correction1}
        if group["weight_decay"] != 0 and group["decoupled_weight_decay"]:
            scalars["decay"] = 1.0 - lr * group["weight_decay"]
        return scalars

    def _update(self, param: Tensor, grad: Tensor, state: dict, group: dict, scalars: dict):
        beta1, beta2 = scalars.get("beta1", group["betas"][0]), group["betas"][1]
        wd = group["weight_decay"]
        g = -grad if group["maximize"] else grad
        if wd != 0:
            if group["decoupled_weight_decay"]:
                param = param * scalars["decay"]
            else:
                g = g + param * wd
        m = state["exp_avg"] * beta1 + g * (1.0 - beta1)
        v = state["exp_avg_sq"] * beta2 + g * g * (1.0 - beta2)
        factor = scalars["adaptive"] / (v.sqrt() + group["eps"]) + scalars["plain"]
        return param - m * factor, {"exp_avg": m, "exp_avg_sq": v}
