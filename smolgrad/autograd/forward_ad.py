"""Forward-mode automatic differentiation (torch.autograd.forward_ad).

Inside `with dual_level():`, `make_dual(primal, tangent)` gives a tensor that carries a
tangent. Every op on it computes the output's tangent with its Function's `jvp` rule, in
Tensor ops on the same lazy graph, so primal and tangent fuse into the same kernels.
`unpack_dual(t)` returns `(primal, tangent)`.

Only one level can be active at a time (PyTorch's limit too); forward-over-reverse
(a `dual_level` around `autograd.grad`) works, since backward formulas are ordinary ops.
"""

from __future__ import annotations

import itertools
from collections import namedtuple
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from ..tensor import Tensor

UnpackedDualTensor = namedtuple("UnpackedDualTensor", ["primal", "tangent"])

# The active level's id, or None. A module global, not thread-local: every op reads it.
_current: int | None = None
_ids = itertools.count()


def enter_dual_level() -> int:
    """Start a forward-AD level and return its id (prefer `with dual_level():`)."""
    global _current
    if _current is not None:
        raise RuntimeError("Nested forward mode AD is not supported at the moment: exit the active dual_level first")
    _current = next(_ids)
    return _current


def exit_dual_level(*, level: int | None = None) -> None:
    """End the active forward-AD level; its tangents are dropped."""
    global _current
    if _current is None or (level is not None and level != _current):
        raise RuntimeError(f"Trying to exit forward AD level {level}, which is not the active level ({_current})")
    _current = None


class dual_level:
    """Context manager for a forward-AD level: tangents made inside live until it exits."""

    def __enter__(self) -> int:
        return enter_dual_level()

    def __exit__(self, *exc) -> bool:
        exit_dual_level()
        return False


def _level(level: int | None, op: str) -> int:
    level = _current if level is None else level
    if level is None or level != _current:
        raise RuntimeError(f"{op}: no active forward AD level; call it inside `with forward_ad.dual_level():`")
    return level


def make_dual(tensor: Tensor, tangent: Tensor, *, level: int | None = None) -> Tensor:
    """A tensor with `tensor`'s value (and autograd history) carrying `tangent` at the level."""
    from ..function import Alias
    from ..tensor import Tensor

    level = _level(level, "make_dual")
    if not isinstance(tensor, Tensor) or not isinstance(tangent, Tensor):
        raise TypeError("make_dual expects two Tensors (primal, tangent)")
    if not tensor.dtype.is_floating_point:
        raise ValueError(f"make_dual: expected a floating point primal, got {tensor.dtype.name}")
    if (tangent.shape, tangent.dtype, tangent.device) != (tensor.shape, tensor.dtype, tensor.device):
        raise ValueError(
            f"make_dual: the tangent (shape {tangent.shape}, {tangent.dtype.name}, {tangent.device}) must match "
            f"the primal (shape {tensor.shape}, {tensor.dtype.name}, {tensor.device})"
        )
    out = Alias.apply(tensor)
    out._fw = (level, tangent)
    return out


def unpack_dual(tensor: Tensor, *, level: int | None = None) -> UnpackedDualTensor:
    """(primal, tangent) of a dual tensor; the tangent is None where it has none."""
    from ..function import Alias

    level = _current if level is None else level
    tangent = tensor._fw[1] if tensor._fw is not None and tensor._fw[0] == level and level is not None else None
    if tangent is None:
        return UnpackedDualTensor(tensor, None)
    primal = Alias.apply(tensor)
    primal._fw = None
    return UnpackedDualTensor(primal, tangent)


# ----- used by Function.apply -----


def has_tangent(t: Tensor) -> bool:
    """Whether `t` carries a tangent at the active level."""
    return _current is not None and t._fw is not None and t._fw[0] == _current


def input_tangents(tensors: Sequence[Tensor]) -> list | None:
    """The inputs' tangents at the active level (None where absent), or None when there are none."""
    if _current is None:
        return None
    tangents = [t._fw[1] if t._fw is not None and t._fw[0] == _current else None for t in tensors]
    return tangents if any(t is not None for t in tangents) else None


def set_output_tangent(out: Tensor, ctx, tensors: Sequence[Tensor], tangents: list) -> None:
    """Run ctx's JVP rule (zeros standing in for missing tangents) and attach the result."""
    global _current
    from ..tensor import Tensor
    from ..lazy import LazyBuffer

    if not out.dtype.is_floating_point:
        return
    filled = [
        tan if tan is not None else Tensor._from_lazy(LazyBuffer.const(0, t.shape, t.dtype, t.device))
        for t, tan in zip(tensors, tangents)
    ]
    ctx.has_tangent = tuple(tan is not None for tan in tangents)
    level, _current = _current, None  # the rule works on primals: no tangents of tangents
    try:
        tangent = ctx.jvp(*filled)
    finally:
        _current = level
    if tangent.shape != out.shape or tangent.dtype != out.dtype:
        raise RuntimeError(f"internal: {ctx.name}.jvp gave {tangent.shape} {tangent.dtype} for {out.shape} {out.dtype}")
    out._fw = (level, tangent)
