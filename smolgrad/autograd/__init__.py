"""Automatic differentiation (torch.autograd): reverse mode (`backward`, `grad`, to any
order with `create_graph`), forward mode (`forward_ad`), and `functional` (jacobian,
hessian, vjp, jvp, hvp, vhp)."""

from .engine import (
    Function,
    backward,
    enable_grad,
    grad,
    is_grad_enabled,
    no_grad,
    run_backward,  # (used by Tensor.backward)
    set_grad_enabled,
)
from . import forward_ad  # noqa: E402
from . import functional  # noqa: E402

__all__ = [
    "Function",
    "backward",
    "grad",
    "no_grad",
    "enable_grad",
    "is_grad_enabled",
    "set_grad_enabled",
    "forward_ad",
    "functional",
]
