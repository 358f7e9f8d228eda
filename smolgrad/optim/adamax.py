"""Adamax."""

from __future__ import annotations

from typing import Any, Iterable

from ..tensor import Tensor
from .optimizer import Optimizer, check_betas, check_nonnegative


class Adamax(Optimizer):
    """Adamax (Adam with the infinity norm; Kingma and Ba), as torch.optim.Adamax, with
    t the parameter's step count:

        g = -grad if maximize else grad
        g = g + weight_decay * p                         (if weight_decay != 0)
        m = beta1 * m + (1 - beta1) * g
        u = max(beta2 * u, |g| + eps)
        p = p - lr / (1 - beta1^t) * m / u

    State: "step", "exp_avg" (m) and "exp_inf" (u)."""

    _state_keys = ("exp_avg", "exp_inf")
    _state_scalars = ("step",)

    def __init__(
        self,
        params: Iterable,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
    ):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize))

    def _check_group(self, group: dict[str, Any]) -> None:
        check_nonnegative(group, "lr", "eps", "weight_decay")
        check_betas(group)

    def _prepare(self, param: Tensor, state: dict, group: dict) -> dict[str, float]:
        if "exp_avg" not in state:
            state["step"] = 0
            state["exp_avg"] = self._zeros_state(param)
            state["exp_inf"] = self._zeros_state(param)
        step = state["step"] = state["step"] + 1
        return {"clr": group["lr"] / (1.0 - group["betas"][0] ** step)}

    def _update(self, param: Tensor, grad: Tensor, state: dict, group: dict, scalars: dict):
        beta1, beta2 = scalars.get("beta1", group["betas"][0]), group["betas"][1]
        wd = group["weight_decay"]
        g = -grad if group["maximize"] else grad
        if wd != 0:
            g = g + param * wd
        m = state["exp_avg"] * beta1 + g * (1.0 - beta1)
        u = (state["exp_inf"] * beta2).maximum(g.abs() + group["eps"])
        return param - m / u * scalars["clr"], {"exp_avg": m, "exp_inf": u}
