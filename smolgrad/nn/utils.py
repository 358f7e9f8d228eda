"""Gradient utilities (torch.nn.utils)."""

from __future__ import annotations

import math
from functools import reduce
from typing import Iterable

from ..autograd import no_grad
from ..creation import zeros
from ..tensor import Tensor


def clip_grad_norm_(
    parameters: Tensor | Iterable[Tensor],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> Tensor:
    """Scale the gradients of `parameters` so that their joint norm is at most max_norm.

    The norm is taken over all gradients together, as if concatenated into one vector;
    norm_type may be inf. Returns that total norm (before clipping) as a 0-d tensor.
    Nothing is read back from the device: the gradients are multiplied by the tensor
    min(1, max_norm / (norm + 1e-6)), so the step stays one lazy graph."""
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return zeros(())
    device = grads[0].device
    norm_type = float(norm_type)
    with no_grad():
        if norm_type == math.inf:
            total = reduce(Tensor.maximum, [g.abs().amax().to(device) for g in grads])
        else:
            powered = [(g * g if norm_type == 2.0 else g.abs() ** norm_type).sum().to(device) for g in grads]
            total = reduce(Tensor.add, powered) ** (1.0 / norm_type)
        if error_if_nonfinite and not math.isfinite(total.item()):
            raise RuntimeError(
                f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so it cannot be "
                "clipped. To disable this error and scale the gradients by the non-finite norm anyway, set "
                "`error_if_nonfinite=False`"
            )
        coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
        for p in params:
            if p.grad is not None:
                p.grad = p.grad * coef.to(p.grad.device).type(p.grad.dtype)
    return total


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float) -> None:
    """Clamp every gradient element to [-clip_value, clip_value]."""
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    with no_grad():
        for p in params:
            if p.grad is not None:
                p.grad = p.grad.clamp(-clip_value, clip_value)


__all__ = ["clip_grad_norm_", "clip_grad_value_"]
