"""Automatic differentiation (torch.autograd): reverse mode (`backward`, `grad`, to any
order with `create_graph`), forward mode (`forward_ad`), and `functional` (jacobian,
hessian, vjp, jvp, hvp, vhp)."""

import threading

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
from .engine import _GradMode


# ----- inference mode (torch.inference_mode): grad mode off, with a flag to ask about -----
_inference = threading.local()


def is_inference_mode_enabled() -> bool:
    """Whether the code runs inside inference_mode() (torch.is_inference_mode_enabled)."""
    return getattr(_inference, "enabled", False)


class inference_mode(_GradMode):
    """Context manager and decorator (with or without parentheses) for inference: like
    no_grad when mode is True; inference_mode(False) turns inference mode off and, as in
    torch, grad mode on."""

    def __new__(cls, mode=True):
        if callable(mode) and not isinstance(mode, bool):  # @inference_mode without parentheses
            return cls(True)(mode)
        return super().__new__(cls)

    def __init__(self, mode: bool = True):
        self.mode = bool(mode)
        self.enabled = not self.mode

    def __enter__(self):
        self._prev_inference = is_inference_mode_enabled()
        _inference.enabled = self.mode
        return super().__enter__()

    def __exit__(self, *exc):
        _inference.enabled = self._prev_inference
        return super().__exit__(*exc)


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
    "inference_mode",
    "is_inference_mode_enabled",
    "forward_ad",
    "functional",
]
