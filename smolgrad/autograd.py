"""Reverse-mode autograd: the Function base class, grad mode, and the backward engine.

A Function's forward and backward work on LazyBuffers, so the backward pass is lazy
too: it builds graph nodes that the scheduler runs when a gradient is needed.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Iterable, Sequence

from .graph import postorder
from .lazy import LazyBuffer
from .ops import Op

if TYPE_CHECKING:
    from .tensor import Tensor

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "enabled", True)


def set_grad_enabled(mode: bool) -> None:
    _state.enabled = bool(mode)


class _GradMode(contextlib.ContextDecorator):
    """Sets grad mode to `enabled` inside a `with` block or a decorated function."""

    enabled: bool

    def __enter__(self):
        self._prev = is_grad_enabled()
        set_grad_enabled(self.enabled)
        return self

    def __exit__(self, *exc):
        set_grad_enabled(self._prev)
        return False


class no_grad(_GradMode):
    """Context manager and decorator that stops ops from being recorded for backward."""

    enabled = False


class enable_grad(_GradMode):
    """Context manager and decorator that turns recording back on inside no_grad."""

    enabled = True


class Function:
    """A differentiable op: `forward` on LazyBuffers, `backward` its vector-Jacobian
    product, returning one gradient (or None) per tensor input."""

    def __init__(self, *tensors: Tensor):
        self.needs_input_grad = tuple(t.requires_grad for t in tensors)
        self.requires_grad = is_grad_enabled() and any(self.needs_input_grad)
        self.parents: tuple[Tensor, ...] = tensors if self.requires_grad else ()
        self.released = False

    def forward(self, *args, **kwargs) -> LazyBuffer:
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, grad: LazyBuffer):
        raise NotImplementedError(f"{type(self).__name__}.backward")

    @classmethod
    def apply(cls, *tensors: Tensor, **kwargs) -> Tensor:
        from .tensor import Tensor

        ctx = cls(*tensors)
        out = Tensor._from_lazy(ctx.forward(*[t.lazydata for t in tensors], **kwargs), requires_grad=ctx.requires_grad)
        if ctx.requires_grad:
            out._ctx = ctx
            for value in vars(ctx).values():  # what backward will read: store it, don't fuse it away
                if isinstance(value, LazyBuffer):
                    value.base.saved = True
        return out

    def release(self) -> None:
        """Drop what backward needed (like PyTorch freeing saved tensors)."""
        keep = {"needs_input_grad", "requires_grad"}
        for k in [k for k in self.__dict__ if k not in keep]:
            del self.__dict__[k]
        self.parents = ()
        self.released = True

    @property
    def name(self) -> str:
        return type(self).__name__ + "Backward"

    def __repr__(self) -> str:
        return f"<{self.name}>"


def _toposort(roots: Sequence[Tensor]) -> list[Tensor]:
    """Tensors reachable from `roots` through recorded ops, inputs before outputs."""

    def recorded_inputs(t: Tensor) -> list[Tensor]:
        ctx = t._ctx
        if ctx is None:
            return []
        if ctx.released:
            raise RuntimeError(
                "Trying to backward through the graph a second time (or directly access saved tensors after "
                "they have already been freed). Specify retain_graph=True if you need to backward through the "
                "graph a second time."
            )
        return [p for p in ctx.parents if p.requires_grad]

    return postorder(roots, recorded_inputs)


def _initial_grad(out: Tensor, grad) -> LazyBuffer:
    from .tensor import Tensor

    if grad is None:
        if out.numel() != 1:
            raise RuntimeError(
                f"grad can be implicitly created only for scalar outputs; got shape {out.shape}. "
                "Pass gradient=... (a tensor of the output's shape) to backward()."
            )
        return out.lazydata.const_like(1.0)
    if not isinstance(grad, Tensor):
        grad = Tensor(grad, dtype=out.dtype, device=out.device)
    if grad.shape != out.shape:
        raise RuntimeError(f"backward: gradient has shape {grad.shape} but the output has shape {out.shape}")
    if grad.device != out.device:
        raise RuntimeError(f"backward: gradient is on {grad.device} but the output is on {out.device}")
    return grad.lazydata.cast(out.dtype)


def run_backward(
    outputs: Sequence[Tensor],
    grad_outputs: Sequence,
    retain_graph: bool = False,
    inputs: Sequence[Tensor] | None = None,
) -> dict[int, LazyBuffer]:
    """Propagate gradients from `outputs` back through the recorded graph.

    With `inputs` None, gradients of leaf tensors are accumulated into `.grad`;
    otherwise the gradients reaching `inputs` are returned by id and `.grad` is untouched."""
    for o in outputs:
        if not o.requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
    grads: dict[int, LazyBuffer] = {}
    for o, g in zip(outputs, grad_outputs):
        g = _initial_grad(o, g)
        grads[id(o)] = grads[id(o)].e(Op.ADD, g) if id(o) in grads else g
    wanted = {id(t) for t in inputs} if inputs is not None else None
    captured: dict[int, LazyBuffer] = {}
    for t in reversed(_toposort(outputs)):
        g = grads.pop(id(t), None)
        if g is None:
            continue
        if wanted is not None and id(t) in wanted:
            captured[id(t)] = g
        ctx = t._ctx
        if ctx is None:
            if wanted is None:
                t._accumulate_grad(g)
            continue
        in_grads = ctx.backward(g)
        if not isinstance(in_grads, tuple):
            in_grads = (in_grads,)
        for p, pg in zip(ctx.parents, in_grads):
            if pg is None or not p.requires_grad:
                continue
            assert pg.shape == p.shape, (ctx, pg.shape, p.shape)
            grads[id(p)] = grads[id(p)].e(Op.ADD, pg) if id(p) in grads else pg
        if not retain_graph:
            ctx.release()
    return captured


def grad(
    outputs: Tensor | Sequence[Tensor],
    inputs: Tensor | Sequence[Tensor],
    grad_outputs=None,
    retain_graph: bool | None = None,
    allow_unused: bool = False,
) -> tuple[Tensor | None, ...]:
    """Gradients of `outputs` with respect to `inputs`, returned (not stored in .grad)."""
    from .tensor import Tensor

    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs] * len(outputs) if grad_outputs is None else [grad_outputs]
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise RuntimeError(f"autograd.grad: input {i} does not require grad")
    captured = run_backward(outputs, list(grad_outputs), bool(retain_graph), inputs)
    result = []
    for i, t in enumerate(inputs):
        g = captured.get(id(t))
        if g is None and not allow_unused:
            raise RuntimeError(
                f"autograd.grad: input {i} was not used in the graph of the outputs; pass allow_unused=True "
                "to get None for it"
            )
        result.append(None if g is None else Tensor._from_lazy(g))
    return tuple(result)


def backward(tensors: Tensor | Iterable[Tensor], grad_tensors=None, retain_graph: bool = False) -> None:
    """Accumulate gradients of `tensors` into the leaves' `.grad` (torch.autograd.backward)."""
    from .tensor import Tensor

    tensors = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    if grad_tensors is None:
        grad_tensors = [None] * len(tensors)
    elif isinstance(grad_tensors, Tensor):
        grad_tensors = [grad_tensors]
    run_backward(tensors, list(grad_tensors), retain_graph)
