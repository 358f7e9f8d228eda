"""Adam and AdamW."""

from __future__ import annotations

import math
from typing import Any, Iterable

from ..tensor import Tensor
from .optimizer import Optimizer, check_betas, check_nonnegative


class Adam(Optimizer):
    """Adam (Kingma and Ba), as torch.optim.Adam, with t the parameter's step count:

        g = -grad if maximize else grad
        g = g + weight_decay * p                            (L2 penalty, if weight_decay != 0)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        v_max = max(v_max, v)                               (amsgrad; then v_max replaces v below)
        p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    The state of a parameter is its step count "step" and the tensors "exp_avg" (m),
    "exp_avg_sq" (v) and, with amsgrad, "max_exp_avg_sq"."""

    _state_keys = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    _state_scalars = ("step",)
    _decoupled_weight_decay = False

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        check_nonnegative(group, "lr", "eps")
        check_betas(group)
        check_nonnegative(group, "weight_decay")

    def _prepare(self, param: Tensor, state: dict, group: dict) -> dict[str, float]:
        if "exp_avg" not in state:  # zero buffers, so step 1 runs the kernels of every later step
            state["step"] = 0
            state["exp_avg"] = self._zeros_state(param)
            state["exp_avg_sq"] = self._zeros_state(param)
        if group["amsgrad"] and "max_exp_avg_sq" not in state:
            state["max_exp_avg_sq"] = self._zeros_state(param)
        step = state["step"] = state["step"] + 1
        beta1, beta2 = group["betas"]
        lr, wd = group["lr"], group["weight_decay"]
        scalars = {"step_size": lr / (1.0 - beta1**step), "bias_correction2_sqrt": math.sqrt(1.0 - beta2**step)}
        if wd != 0 and self._decoupled_weight_decay:
            scalars["decay"] = 1.0 - lr * wd
        return scalars

    def _update(self, param: Tensor, grad: Tensor, state: dict, group: dict, scalars: dict):
        beta1, beta2 = scalars.get("beta1", group["betas"][0]), group["betas"][1]
        wd, eps = group["weight_decay"], group["eps"]
        g = -grad if group["maximize"] else grad
        if wd != 0:
            if self._decoupled_weight_decay:
                param = param * scalars["decay"]
            else:
                g = g + param * wd
        m = state["exp_avg"] * beta1 + g * (1.0 - beta1)
        v = state["exp_avg_sq"] * beta2 + g * g * (1.0 - beta2)
        new_state = {"exp_avg": m, "exp_avg_sq": v}
        if group["amsgrad"]:
            v = new_state["max_exp_avg_sq"] = state["max_exp_avg_sq"].maximum(v)
        denom = v.sqrt() / scalars["bias_correction2_sqrt"] + eps
        return param - m / denom * scalars["step_size"], new_state


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter), as torch.optim.AdamW:
    first p = p * (1 - lr * weight_decay), then the Adam update without an L2 term."""

    _decoupled_weight_decay = True

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)
