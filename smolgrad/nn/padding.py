"""Padding layers (torch.nn's ZeroPad, ConstantPad, ReflectionPad, ReplicationPad and
CircularPad, 1d/2d/3d): thin modules over F.pad."""

from __future__ import annotations

from ..tensor import Tensor
from . import functional as F
from .module import Module


def _padding(cls_name: str, padding, n: int) -> tuple[int, ...]:
    """An int repeated n times, or a tuple of n ints (left, right, top, bottom, front, back)."""
    if isinstance(padding, int) and not isinstance(padding, bool):
        return (padding,) * n
    if isinstance(padding, (tuple, list)) and len(padding) == n and all(isinstance(p, int) for p in padding):
        return tuple(padding)
    raise ValueError(f"{cls_name}: padding must be an int or a tuple of {n} ints, got {padding!r}")


class _PadNd(Module):
    """Pad the last `dims` dims of the input with F.pad's `mode`."""

    mode = "constant"
    dims = 1

    def __init__(self, padding):
        super().__init__()
        self.padding = _padding(type(self).__name__, padding, 2 * self.dims)

    def _check_input_dim(self, input: Tensor) -> None:
        if input.ndim not in (self.dims + 1, self.dims + 2):
            raise ValueError(
                f"{type(self).__name__}: expected {self.dims + 1}D or {self.dims + 2}D input "
                f"(got {input.ndim}D input of shape {input.shape})"
            )

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        return F.pad(input, self.padding, self.mode)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class _ConstantPadNd(_PadNd):
    def __init__(self, padding, value: float):
        super().__init__(padding)
        self.value = value

    def _check_input_dim(self, input: Tensor) -> None:
        if input.ndim < self.dims:
            raise ValueError(
                f"{type(self).__name__}: expected an input with at least {self.dims} dims "
                f"(got {input.ndim}D input of shape {input.shape})"
            )

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        return F.pad(input, self.padding, "constant", self.value)

    def extra_repr(self) -> str:
        return f"padding={self.padding}, value={self.value}"


class ConstantPad1d(_ConstantPadNd):
    """Pad the last dim with `value`: padding = int or (left, right)."""

    dims = 1


class ConstantPad2d(_ConstantPadNd):
    """Pad the last 2 dims with `value`: padding = int or (left, right, top, bottom)."""

    dims = 2


class ConstantPad3d(_ConstantPadNd):
    """Pad the last 3 dims with `value`: padding = int or (left, right, top, bottom, front, back)."""

    dims = 3


class ZeroPad1d(ConstantPad1d):
    """Pad the last dim with zeros: padding = int or (left, right)."""

    def __init__(self, padding):
        super().__init__(padding, 0.0)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class ZeroPad2d(ConstantPad2d):
    """Pad the last 2 dims with zeros: padding = int or (left, right, top, bottom)."""

    def __init__(self, padding):
        super().__init__(padding, 0.0)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class ZeroPad3d(ConstantPad3d):
    """Pad the last 3 dims with zeros: padding = int or (left, right, top, bottom, front, back)."""

    def __init__(self, padding):
        super().__init__(padding, 0.0)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class ReflectionPad1d(_PadNd):
    """Pad the last dim of (N, C, W) or (C, W) with its reflection (edge not repeated)."""

    mode, dims = "reflect", 1


class ReflectionPad2d(_PadNd):
    """Pad the last 2 dims of (N, C, H, W) or (C, H, W) with their reflection."""

    mode, dims = "reflect", 2


class ReflectionPad3d(_PadNd):
    """Pad the last 3 dims of (N, C, D, H, W) or (C, D, H, W) with their reflection."""

    mode, dims = "reflect", 3


class ReplicationPad1d(_PadNd):
    """Pad the last dim of (N, C, W) or (C, W) by repeating its edge values."""

    mode, dims = "replicate", 1


class ReplicationPad2d(_PadNd):
    """Pad the last 2 dims of (N, C, H, W) or (C, H, W) by repeating their edge values."""

    mode, dims = "replicate", 2


class ReplicationPad3d(_PadNd):
    """Pad the last 3 dims of (N, C, D, H, W) or (C, D, H, W) by repeating their edge values."""

    mode, dims = "replicate", 3


class CircularPad1d(_PadNd):
    """Pad the last dim of (N, C, W) or (C, W) by wrapping around (periodic)."""

    mode, dims = "circular", 1


class CircularPad2d(_PadNd):
    """Pad the last 2 dims of (N, C, H, W) or (C, H, W) by wrapping around (periodic)."""

    mode, dims = "circular", 2


class CircularPad3d(_PadNd):
    """Pad the last 3 dims of (N, C, D, H, W) or (C, D, H, W) by wrapping around (periodic)."""

    mode, dims = "circular", 3
