"""RMSprop."""

from __future__ import annotations

from typing import Any, Iterable

from ..tensor import Tensor
from .optimizer import Optimizer, check_nonnegative


class RMSprop(Optimizer):
    """RMSprop (Hinton), as torch.optim.RMSprop:

        g = -grad if maximize else grad
        g = g + weight_decay * p                         (if weight_decay != 0)
        v = alpha * v + (1 - alpha) * g * g
        a = alpha * a + (1 - alpha) * g; d = sqrt(v - a * a) + eps   (centered)
        d = sqrt(v) + eps                                (not centered)
        b = momentum * b + g / d; p = p - lr * b         (momentum > 0; b starts at 0)
        p = p - lr * g / d                               (momentum == 0)

    State: "step", "square_avg" (v), "momentum_buffer" (b, if momentum > 0) and
    "grad_avg" (a, if centered). Centered with momentum binds 10 buffers, so its update
    is two kernels on a device limited to WebGPU's default of 8 per kernel."""

    _state_keys = ("square_avg", "momentum_buffer", "grad_avg")
    _state_scalars = ("step",)

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        *,
        maximize: bool = False,
    ):
        defaults = dict(
            lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum, centered=centered, maximize=maximize
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        check_nonnegative(group, "lr", "eps", "momentum", "weight_decay", "alpha")

    def _prepare(self, param: Tensor, state: dict, group: dict) -> dict[str, float]:
        if "square_avg" not in state:
            state["step"] = 0
            state["square_avg"] = self._zeros_state(param)
        if (group["momentum"] > 0 or "momentum" in self._cycled_options) and "momentum_buffer" not in state:
            state["momentum_buffer"] = self._zeros_state(param)
        if group["centered"] and "grad_avg" not in state:
            state["grad_avg"] = self._zeros_state(param)
        state["step"] += 1
        return {"lr": group["lr"]}

    def _update(self, param: Tensor, grad: Tensor, state: dict, group: dict, scalars: dict):
        alpha, eps, wd = group["alpha"], group["eps"], group["weight_decay"]
        momentum = scalars.get("momentum", group["momentum"])
        g = -grad if group["maximize"] else grad
        if wd != 0:
            g = g + param * wd
        v = state["square_avg"] * alpha + g * g * (1.0 - alpha)
        new_state = {"square_avg": v}
        if group["centered"]:
            a = new_state["grad_avg"] = state["grad_avg"] * alpha + g * (1.0 - alpha)
            v = v - a * a
        step = g / (v.sqrt() + eps)
        if "momentum" in scalars or momentum > 0:
            step = new_state["momentum_buffer"] = state["momentum_buffer"] * momentum + step
        return param - step * scalars["lr"], new_state
