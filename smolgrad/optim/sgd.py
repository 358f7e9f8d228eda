"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""

from __future__ import annotations

from typing import Any, Iterable

from ..tensor import Tensor
from .optimizer import Optimizer, check_nonnegative


class SGD(Optimizer):
    """Stochastic gradient descent (optionally with momentum), as torch.optim.SGD:

        g = -grad if maximize else grad
        g = g + weight_decay * p                      (if weight_decay != 0)
        b = g on the first step, else momentum * b + (1 - dampening) * g
        g = g + momentum * b if nesterov else b       (if momentum != 0)
        p = p - lr * g
    """

    _state_keys = ("momentum_buffer",)

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ):
        defaults = dict(
            lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov, maximize=maximize
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        check_nonnegative(group, "lr", "momentum", "weight_decay")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum > 0 and zero dampening")

    def _prepare(self, param: Tensor, state: dict, group: dict) -> dict[str, float]:
        scalars = {"lr": group["lr"]}
        if group["momentum"] != 0 or "momentum" in self._cycled_options:
            # the first step sets b = g; written as 0 * zeros + 1 * g with the factors as
            # 0-d tensors, it runs the same kernel as every later step (no recompile)
            first = "momentum_buffer" not in state
            if first:
                state["momentum_buffer"] = self._zeros_state(param)
            scalars["decay"] = 0.0 if first else group["momentum"]
            scalars["gain"] = 1.0 if first else 1.0 - group["dampening"]
        return scalars

    def _update(self, param: Tensor, grad: Tensor, state: dict, group: dict, scalars: dict):
        momentum, wd = scalars.get("momentum", group["momentum"]), group["weight_decay"]
        g = -grad if group["maximize"] else grad
        if wd != 0:
            g = g + param * wd
        new_state = {}
        if "momentum" in scalars or momentum != 0:
            buf = new_state["momentum_buffer"] = state["momentum_buffer"] * scalars["decay"] + g * scalars["gain"]
            g = g + buf * momentum if group["nesterov"] else buf
        return param - g * scalars["lr"], new_state
