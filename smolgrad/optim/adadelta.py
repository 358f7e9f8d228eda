"""Adadelta."""

from __future__ import annotations

from typing import Any, Iterable

from ..tensor import Tensor
from .optimizer import Optimizer, check_nonnegative


class Adadelta(Optimizer):
    """Adadelta (Zeiler), as torch.optim.Adadelta:

        g = -grad if maximize else grad
        g = g + weight_decay * p                         (if weight_decay != 0)
        v = rho * v + (1 - rho) * g * g
        delta = sqrt(u + eps) / sqrt(v + eps) * g
        u = rho * u + (1 - rho) * delta * delta
        p = p - lr * delta

    State: "step", "square_avg" (v) and "acc_delta" (u)."""

    _state_keys = ("square_avg", "acc_delta")
    _state_scalars = ("step",)

    def __init__(
        self,
        params: Iterable,
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
    ):
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize))

    def _check_group(self, group: dict[str, Any]) -> None:
        check_nonnegative(group, "lr", "eps", "weight_decay")
        if not 0.0 <= group["rho"] <= 1.0:
            raise ValueError(f"Invalid rho value: {group['rho']} (it must be in [0, 1])")

    def _prepare(self, param: Tensor, state: dict, group: dict) -> dict[str, float]:
        if "square_avg" not in state:
            state["step"] = 0
            state["square_avg"] = self._zeros_state(param)
            state["acc_delta"] = self._zeros_state(param)
        state["step"] += 1
        return {"lr": group["lr"]}

    def _update(self, param: Tensor, grad: Tensor, state: dict, group: dict, scalars: dict):
        rho, eps, wd = group["rho"], group["eps"], group["weight_decay"]
        g = -grad if group["maximize"] else grad
        if wd != 0:
            g = g + param * wd
        v = state["square_avg"] * rho + g * g * (1.0 - rho)
        delta = (state["acc_delta"] + eps).sqrt() / (v + eps).sqrt() * g
        u = state["acc_delta"] * rho + delta * delta * (1.0 - rho)
        return param - delta * scalars["lr"], {"square_avg": v, "acc_delta": u}
