"""Adagrad."""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from ..tensor import Tensor
from .optimizer import Optimizer, check_nonnegative


class Adagrad(Optimizer):
    """Adagrad (Duchi et al.), as torch.optim.Adagrad, with t the parameter's step count:

        g = -grad if maximize else grad
        g = g + weight_decay * p                         (if weight_decay != 0)
        clr = lr / (1 + (t - 1) * lr_decay)
        s = s + g * g
        p = p - clr * g / (sqrt(s) + eps)

    State: "step" and "sum" (s, starting at initial_accumulator_value). As in PyTorch,
    the state of every parameter is created with the optimizer."""

    _state_keys = ("sum",)
    _state_scalars = ("step",)

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        *,
        maximize: bool = False,
    ):
        defaults = dict(
            lr=lr,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
            maximize=maximize,
        )
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, self.state[p], group)

    def _check_group(self, group: dict[str, Any]) -> None:
        check_nonnegative(group, "lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps")

    @staticmethod
    def _init_state(param: Tensor, state: dict, group: dict) -> None:
        if "sum" not in state:
            state["step"] = 0
            value = np.full(param.shape, group["initial_accumulator_value"], dtype=param.dtype.np)
            state["sum"] = Tensor(value, dtype=param.dtype, device=param.device)

    def _prepare(self, param: Tensor, state: dict, group: dict) -> dict[str, float]:
        self._init_state(param, state, group)  # (a parameter group added later)
        step = state["step"] = state["step"] + 1
        return {"clr": group["lr"] / (1.0 + (step - 1) * group["lr_decay"])}

    def _update(self, param: Tensor, grad: Tensor, state: dict, group: dict, scalars: dict):
        g = -grad if group["maximize"] else grad
        if group["weight_decay"] != 0:
            g = g + param * group["weight_decay"]
        s = state["sum"] + g * g
        return param - g / (s.sqrt() + group["eps"]) * scalars["clr"], {"sum": s}
