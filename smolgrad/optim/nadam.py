"""NAdam."""

from __future__ import annotations

from typing import Any, Iterable

from ..tensor import Tensor
from .optimizer import Optimizer, check_betas, check_nonnegative


class NAdam(Optimizer):
    """NAdam (Adam with Nesterov momentum; Dozat), as torch.optim.NAdam, with t the
    parameter's step count and psi = momentum_decay:

        g = -grad if maximize else grad
        p = p * (1 - lr * weight_decay)                  (decoupled_weight_decay)
        g = g + weight_decay * p                         (otherwise, if weight_decay != 0)
        mu_t = beta1 * (1 - 0.5 * 0.96^(t * psi)); mu_next = the same at t + 1
        mu_product = mu_product * mu_t
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        d = sqrt(v / (1 - beta2^t)) + eps
        p = p - lr * (1 - mu_t) / (1 - mu_product) * g / d
              - lr * mu_next / (1 - mu_product * mu_next) * m / d

    State: "step", "mu_product" (a float) and the tensors "exp_avg" (m), "exp_avg_sq" (v)."""

    _state_keys = ("exp_avg", "exp_avg_sq")
    _state_scalars = ("step", "mu_product")

    def __init__(
        self,
        params: Iterable,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum_decay: float = 4e-3,
        decoupled_weight_decay: bool = False,
        *,
        maximize: bool = False,
    ):
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            momentum_decay=momentum_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        check_nonnegative(group, "lr", "eps", "weight_decay", "momentum_decay")
        check_betas(group)

    def _prepare(self, param: Tensor, state: dict, group: dict) -> dict[str, float]:
        if "exp_avg" not in state:
            state["step"] = 0
            state["mu_product"] = 1.0
            state["exp_avg"] = self._zeros_state(param)
            state["exp_avg_sq"] = self._zeros_state(param)
        step = state["step"] = state["step"] + 1
        (beta1, beta2), lr, psi = group["betas"], group["lr"], group["momentum_decay"]
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * psi))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * psi))
        mu_product = state["mu_product"] = state["mu_product"] * mu
        scalars = {
            "grad_step": lr * (1.0 - mu) / (1.0 - mu_product),
            "avg_step": lr * mu_next / (1.0 - mu_product * mu_next),
            "bias_correction2_sqrt": (1.0 - beta2**step) ** 0.5,
        }
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
        d = v.sqrt() / scalars["bias_correction2_sqrt"] + group["eps"]
        new_p = param - (g * scalars["grad_step"] + m * scalars["avg_step"]) / d
        return new_p, {"exp_avg": m, "exp_avg_sq": v}
