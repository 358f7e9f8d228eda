"""Automatic mixed precision: `autocast` and the per-op casting policy.

Inside `autocast(device_type)`, ops on that device's tensors follow PyTorch's policy:
- `lower` ops (matmul, linear, convolutions, attention) cast floating inputs to the
  autocast dtype (float16) and give float16 results;
- `float32` ops (softmax, log_softmax, normalisations, losses, sum, prod, cumsum) cast
  float16 inputs to float32 and give float32 results;
- every other op runs in its inputs' (promoted) dtype (ops marked `keep` that are
  composed of float32-policy ones, like mean and var, run as written).
float64 inputs are never cast. The casts are differentiable ops, so float32 parameters
(the master weights) receive float32 gradients. An op applies the policy once at its
entry; the ops it is composed of run as written (autocast is suspended inside it, as
inside one of PyTorch's kernels), and so does backward.
"""

from __future__ import annotations

import contextlib
import functools
import threading

from . import dtypes
from .device import canonical
from .dtypes import DType

_state = threading.local()


def _stack() -> list:
    if not hasattr(_state, "stack"):
        _state.stack = []  # (device, dtype, enabled) per entered autocast, innermost last
        _state.suspended = 0
    return _state.stack


class autocast(contextlib.ContextDecorator):
    """Context manager and decorator running eligible ops on `device_type` in `dtype`
    (float16, the default) and precision-sensitive ones in float32, like torch.autocast."""

    def __init__(self, device_type: str, dtype=None, enabled: bool = True, cache_enabled: bool | None = None):
        if not isinstance(device_type, str):
            raise ValueError(f"autocast: device_type must be a str such as 'webgpu' or 'cpu', got {device_type!r}")
        self.device = canonical(device_type)
        self.fast_dtype = dtypes.float16 if dtype is None else dtypes.to_dtype(dtype)
        if self.fast_dtype != dtypes.float16:
            raise ValueError(f"autocast: dtype must be float16 (the only lower-precision dtype), got {self.fast_dtype.name}")
        self.enabled = bool(enabled)

    def __enter__(self):
        _stack().append((self.device, self.fast_dtype, self.enabled))
        return self

    def __exit__(self, *exc):
        _stack().pop()
        return False


def _innermost(device: str) -> tuple[DType, bool] | None:
    for d, dtype, enabled in reversed(_stack()):
        if d == device:
            return dtype, enabled
    return None


def is_autocast_enabled(device_type: str | None = None) -> bool:
    """Whether autocast is on for `device_type` (any device when None)."""
    if device_type is None:
        return any(enabled for _, _, enabled in _stack())
    found = _innermost(canonical(device_type))
    return found is not None and found[1]


def get_autocast_dtype(device_type: str) -> DType:
    """The lower-precision dtype autocast uses on `device_type` (float16)."""
    found = _innermost(canonical(device_type))
    return found[0] if found is not None else dtypes.float16


@contextlib.contextmanager
def suspended():
    """Run ops as written, without autocast's casts (inside an op, and in backward)."""
    _stack()
    _state.suspended += 1
    try:
        yield
    finally:
        _state.suspended -= 1


def _target(args, kwargs) -> DType | None:
    """The autocast dtype for an op on these arguments, or None when autocast is off for
    their device (or suspended)."""
    if not _stack() or _state.suspended:
        return None
    for a in (*args, *kwargs.values()):
        if isinstance(getattr(a, "dtype", None), DType) and hasattr(a, "device"):
            found = _innermost(a.device)
            return found[0] if found is not None and found[1] else None
    return None


def _cast_all(args, kwargs, cast):
    def one(a):
        return cast(a) if isinstance(getattr(a, "dtype", None), DType) and hasattr(a, "lazydata") else a

    return [one(a) for a in args], {k: one(v) for k, v in kwargs.items()}


def autocast_op(policy: str):
    """Decorator applying autocast's `policy` ('lower', 'float32', or 'keep': no casts)
    to an op's tensor arguments; the op body runs with autocast suspended."""
    if policy not in ("lower", "float32", "keep"):
        raise ValueError(f"unknown autocast policy {policy!r}")

    def wrap(fn):
        @functools.wraps(fn)
        def op(*args, **kwargs):
            dtype = _target(args, kwargs)
            if dtype is None:
                return fn(*args, **kwargs)
            if policy == "lower":

                def cast(t):
                    return t.type(dtype) if t.dtype.is_floating_point and t.dtype != dtypes.float64 else t

            elif policy == "float32":

                def cast(t):
                    return t.type(dtypes.float32) if t.dtype == dtype else t

            if policy != "keep":
                args, kwargs = _cast_all(args, kwargs, cast)
            with suspended():
                return fn(*args, **kwargs)

        return op

    return wrap
